// Gateway memory for issue 18: RSS per idle supervisor session with many sessions, and growth over
// many relay open/close cycles (a leak shows as a slope that does not flatten).
//  1. one sandbox READY, the gateway's RSS; then N-1 more (real host supervisors), RSS again:
//     (after - before) / (N - 1) per idle session;
//  2. on one sandbox, CYCLES relays opened and closed through `CONNECT /connect/ssh` (the gateway
//     opens a relay, the supervisor bridges it to its SSH server, the client reads the SSH banner
//     and hangs up); gateway and supervisor RSS and open descriptors sampled every CYCLES/5.
// Memory does not depend on the host's load the way times do: these figures need no quiet host.
// Each RSS figure comes with the gateway's smaps split (brk heap, anonymous mappings, file-backed);
// with OPENSHELL_BENCH_PROBE=1 the gateway also reports its V8 heap (a preloaded SIGUSR2 handler).
// Usage: bash bench/run.sh relay-memory-bench.ts [--sessions 100] [--cycles 10000] [--tls]

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { type GatewayTls, makeStateDir } from "@openshell/testing/gateway-harness";
import {
  endSupervisors,
  makeWorkdir,
  openFdCount,
  startGatewayWithSupervisors,
  supervisorLog,
  supervisorPid,
  supervisorPidIfAny,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { makeTestPki } from "@openshell/testing/test-pki";
import { rssMiB, smapsKiB } from "./proc-stats.js";

const { values } = parseArgs({
  options: {
    sessions: { type: "string", default: "100" },
    cycles: { type: "string", default: "10000" },
    tls: { type: "boolean", default: false },
  },
});
const SESSIONS = Number(values.sessions);
const CYCLES = Number(values.cycles);
const SAMPLES = 5;

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One relay: CONNECT, wait for the 200 and the first bytes (the SSH server's banner), hang up. */
interface ClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function relayCycle(port: number, sandboxId: string, token: string, tls?: ClientTls): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request({
      ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, servername: "localhost" } : {}),
      host: "127.0.0.1",
      port,
      method: "CONNECT",
      path: "/connect/ssh",
      headers: { "x-sandbox-id": sandboxId, "x-sandbox-token": token },
    });
    req.on("connect", (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`CONNECT answered ${res.statusCode}`));
        return;
      }
      const hangUp = () => {
        socket.once("close", () => resolve());
        socket.destroy();
      };
      // The banner may have come with the 200 already.
      if (head.length > 0) hangUp();
      else socket.once("data", hangUp);
      socket.once("error", reject);
    });
    req.on("response", (res) => reject(new Error(`CONNECT answered ${res.statusCode}`)));
    req.on("error", reject);
    req.end();
  });
}

/** The gateway's memory as smaps splits it, and its V8 heap when the probe is loaded. */
async function describeMemory(pid: number, probeDir: string | undefined): Promise<string> {
  const smaps = smapsKiB(pid);
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  let text = `RSS ${mib(smaps.rss)} MiB: brk heap ${mib(smaps.brk)}, anonymous mappings ${mib(smaps.anonMappings)}, file-backed ${mib(smaps.file)}`;
  if (probeDir) {
    process.kill(pid, "SIGUSR2");
    await settle(500);
    interface HeapFigures {
      usage: Record<string, number>;
      spaces: Record<string, { phys: number; used: number }>;
    }
    const probe = JSON.parse(readFileSync(join(probeDir, `probe-${pid}.json`), "utf8")) as HeapFigures & {
      afterGc: HeapFigures;
    };
    const heap = ({ usage, spaces }: HeapFigures) => {
      const space = (name: string) => `${mib(spaces[name]?.phys ?? 0)}/${mib(spaces[name]?.used ?? 0)}`;
      return `heapTotal/used ${mib(usage.heapTotal ?? 0)}/${mib(usage.heapUsed ?? 0)} (new ${space("new_space")}, old ${space("old_space")}, code ${space("code_space")}, large ${space("large_object_space")}), external ${mib(usage.external ?? 0)}`;
    };
    text += `\n  V8 ${heap(probe)}\n  after a forced GC: RSS ${mib(smapsKiB(pid).rss)} MiB, V8 ${heap(probe.afterGc)}`;
  }
  return text;
}

/** A preloaded module that writes the process's V8 heap figures to probeDir on SIGUSR2. */
function writeProbe(probeDir: string): string {
  const file = join(probeDir, "probe.mjs");
  writeFileSync(
    file,
    `import { writeFileSync } from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");
process.on("SIGUSR2", () => {
  const kib = (n) => n >> 10;
  const snapshot = () => ({
    usage: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, kib(v)])),
    spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { phys: kib(s.physical_space_size), used: kib(s.space_used_size) }])),
  });
  const before = snapshot();
  gc();
  writeFileSync(${JSON.stringify(probeDir)} + "/probe-" + process.pid + ".json", JSON.stringify({ ...before, afterGc: snapshot() }));
});
`,
  );
  return file;
}

async function main() {
  const stateDir = makeStateDir();
  const workdir = makeWorkdir();
  let tls: GatewayTls | undefined;
  let clientTls: ClientTls | undefined;
  if (values.tls) {
    const pki = await makeTestPki(join(stateDir, "pki"));
    tls = {
      cert: pki.serverCert,
      key: pki.serverKey,
      clientCa: pki.ca,
      client: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    };
    clientTls = {
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    };
  }
  const probeDir = process.env.OPENSHELL_BENCH_PROBE === "1" ? join(stateDir, "probe") : undefined;
  const env: Record<string, string> = {};
  if (probeDir) {
    mkdirSync(probeDir);
    // Every node process of the run loads it (driver, supervisors too); only the gateway is signalled.
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import=${writeProbe(probeDir)}`;
  }
  const gw = await startGatewayWithSupervisors({ stateDir, workdir, tls, env });
  const ids: string[] = [];
  try {
    console.log(
      `# relay-memory-bench  node ${process.version}  ${SESSIONS} sessions, ${CYCLES} relay cycles  gateway ${tls ? "TLS (mTLS)" : "h2c"}  (${new Date().toISOString()})`,
    );
    ids.push((await gw.grpc.createSandbox({ spec: {}, name: "mem-0" })).sandbox!.id);
    await waitForPhase(gw, "mem-0", SandboxPhase.READY, 60_000);
    await settle(3000);
    const oneSession = rssMiB(gw.pid);
    console.log(`gateway with 1 session: ${await describeMemory(gw.pid, probeDir)}`);
    for (let i = 1; i < SESSIONS; i++) {
      ids.push((await gw.grpc.createSandbox({ spec: {}, name: `mem-${i}` })).sandbox!.id);
    }
    for (let i = 1; i < SESSIONS; i++) await waitForPhase(gw, `mem-${i}`, SandboxPhase.READY, 600_000);
    await settle(5000);
    const allSessions = rssMiB(gw.pid);
    console.log(`gateway with ${SESSIONS} sessions: ${await describeMemory(gw.pid, probeDir)}`);
    console.log(
      `gateway RSS ${oneSession.toFixed(1)} MiB with 1 session, ${allSessions.toFixed(1)} MiB with ${SESSIONS}: ${(((allSessions - oneSession) * 1024) / (SESSIONS - 1)).toFixed(0)} KiB per idle session (goal < 200)`,
    );

    const sandboxId = ids[0] as string;
    const supervisor = supervisorPid(stateDir, sandboxId);
    const token = (await gw.grpc.createSshSession({ sandboxId })).token;
    const every = Math.max(1, Math.floor(CYCLES / SAMPLES));
    const sample = (done: number) =>
      console.log(
        `after ${String(done).padStart(6)} relays: gateway RSS ${rssMiB(gw.pid).toFixed(1)} MiB, fds ${openFdCount(gw.pid)}; supervisor RSS ${rssMiB(supervisor).toFixed(1)} MiB, fds ${openFdCount(supervisor)}`,
      );
    sample(0);
    const started = Date.now();
    for (let done = 1; done <= CYCLES; done++) {
      await relayCycle(gw.port, sandboxId, token, clientTls).catch((error: Error) => {
        const tail = (text: string) => text.trim().split("\n").slice(-8).join("\n");
        throw new Error(
          `relay ${done} failed: ${error.message}\ngateway log:\n${tail(gw.output())}\nsupervisor log:\n${tail(supervisorLog(stateDir, sandboxId))}`,
        );
      });
      if (done % every === 0) {
        await settle(500);
        sample(done);
      }
    }
    console.log(`${CYCLES} relays opened and closed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await settle(5000);
    sample(CYCLES);
  } finally {
    await endSupervisors(ids.flatMap((id) => supervisorPidIfAny(stateDir, id) ?? []));
    await gw.stop("SIGTERM");
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  }
}

await main();
