// Gateway memory for issue 18: RSS per idle supervisor session with many sessions, and growth over
// many relay open/close cycles (a leak shows as a slope that does not flatten).
//  1. one sandbox READY, the gateway's RSS; then N-1 more (real host supervisors), RSS again:
//     (after - before) / (N - 1) per idle session;
//  2. on one sandbox, CYCLES relays opened and closed through `CONNECT /connect/ssh` (the gateway
//     opens a relay, the supervisor bridges it to its SSH server, the client reads the SSH banner
//     and hangs up); gateway and supervisor RSS and open descriptors sampled every CYCLES/5.
// Memory does not depend on the host's load the way times do: these figures need no quiet host.
// Usage: bash bench/run.sh relay-memory-bench.ts [--sessions 100] [--cycles 10000]

import { rmSync } from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { makeStateDir } from "@openshell/testing/gateway-harness";
import { isAlive } from "@openshell/testing/process";
import {
  makeWorkdir,
  openFdCount,
  startGatewayWithSupervisors,
  supervisorLog,
  supervisorPid,
  supervisorPidIfAny,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { rssMiB } from "./proc-stats.js";

const { values } = parseArgs({
  options: {
    sessions: { type: "string", default: "100" },
    cycles: { type: "string", default: "10000" },
  },
});
const SESSIONS = Number(values.sessions);
const CYCLES = Number(values.cycles);
const SAMPLES = 5;

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One relay: CONNECT, wait for the 200 and the first bytes (the SSH server's banner), hang up. */
function relayCycle(port: number, sandboxId: string, token: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({
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

async function main() {
  const stateDir = makeStateDir();
  const workdir = makeWorkdir();
  const gw = await startGatewayWithSupervisors({ stateDir, workdir });
  const ids: string[] = [];
  try {
    console.log(
      `# relay-memory-bench  node ${process.version}  ${SESSIONS} sessions, ${CYCLES} relay cycles  (${new Date().toISOString()})`,
    );
    ids.push((await gw.grpc.createSandbox({ spec: {}, name: "mem-0" })).sandbox!.id);
    await waitForPhase(gw, "mem-0", SandboxPhase.READY, 60_000);
    await settle(3000);
    const oneSession = rssMiB(gw.pid);
    for (let i = 1; i < SESSIONS; i++) {
      ids.push((await gw.grpc.createSandbox({ spec: {}, name: `mem-${i}` })).sandbox!.id);
    }
    for (let i = 1; i < SESSIONS; i++) await waitForPhase(gw, `mem-${i}`, SandboxPhase.READY, 600_000);
    await settle(5000);
    const allSessions = rssMiB(gw.pid);
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
      await relayCycle(gw.port, sandboxId, token).catch((error: Error) => {
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
    const supervisors = ids.flatMap((id) => supervisorPidIfAny(stateDir, id) ?? []);
    await gw.stop("SIGTERM");
    for (const pid of supervisors) if (isAlive(pid)) process.kill(pid, "SIGKILL");
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  }
}

await main();
