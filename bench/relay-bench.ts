// Relay benchmarks for issue 3. Prints every figure with its same-run baseline:
//  1. bulk: OpenSSH sends N MiB into `cat` through ssh-proxy + gateway + relay, vs the same client
//     talking straight to the supervisor's Unix socket;
//  2. warm ExecSandbox round trip of `true` (p50/p99 over 200) vs an ssh2 exec on an open connection
//     to the same supervisor socket;
//  3. 20 sandboxes x 5 concurrent relays, and gateway memory per idle supervisor session.
//  Each bulk path also reports CPU ms per MiB of its processes (client side: ssh and its
//  ProxyCommand; middle: the gateway, or the two forwarders; the supervisor), which moves far less
//  with the host's load than throughput does.
// Usage: bash bench/run.sh relay-bench.ts [--mib 256] [--runs 5] [--sandboxes 20] [--execs 200] [--tls]
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import net from "node:net";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { type GatewayTls, makeStateDir, type RunningGateway } from "@openshell/testing/gateway-harness";
import {
  endSupervisors,
  makeWorkdir,
  sshOptions,
  sshOptionsVia,
  startGatewayWithSupervisors,
  supervisorPid,
  supervisorPidIfAny,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { makeTestPki } from "@openshell/testing/test-pki";
import { Client } from "ssh2";
import { cpuMs, ioSyscalls, rssMiB } from "./proc-stats.js";
import { median, quantile } from "./stats.js";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    runs: { type: "string", default: "5" },
    sandboxes: { type: "string", default: "20" },
    execs: { type: "string", default: "200" },
    tls: { type: "boolean", default: false },
    // e.g. `--paths relay` to profile the relay alone (NODE_OPTIONS=--cpu-prof); ratios need all three.
    paths: { type: "string", default: "direct,relay,forwarders" },
  },
});
const PATHS = new Set(values.paths.split(","));
const MIB = Number(values.mib);
const RUNS = Number(values.runs);
const SANDBOXES = Number(values.sandboxes);
const EXECS = Number(values.execs);
const UNIX_PROXY = resolve(import.meta.dirname, "..", "unix-socket-proxy.mjs");
const TCP_FORWARDER = resolve(import.meta.dirname, "..", "tcp-forwarder.mjs");
const TCP_PROXY_COMMAND = resolve(import.meta.dirname, "..", "tcp-proxy-command.mjs");

/**
 * The ceiling for this hop count: the same processes and loopback hops as the relay path
 * (ProxyCommand → TCP → forwarder → TCP → forwarder → Unix socket) with plain byte pipes, no HTTP/2.
 */
async function startForwarderChain(
  socket: string,
): Promise<{ port: number; pids: number[]; stop: () => void }> {
  const start = (target: string) =>
    new Promise<{ port: number; child: ReturnType<typeof spawn> }>((ready, reject) => {
      const child = spawn(process.execPath, [TCP_FORWARDER, target], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      child.stdout?.once("data", (d: Buffer) => ready({ port: Number(String(d).trim()), child }));
      child.once("error", reject);
    });
  const inner = await start(socket);
  const outer = await start(`127.0.0.1:${inner.port}`);
  return {
    port: outer.port,
    pids: [inner.child.pid, outer.child.pid].filter((pid): pid is number => pid !== undefined),
    stop: () => {
      inner.child.kill();
      outer.child.kill();
    },
  };
}

function forwarderSshArgs(port: number): string[] {
  return sshOptionsVia(`${process.execPath} ${TCP_PROXY_COMMAND} ${port}`);
}

const fmt = (xs: number[], unit: string, digits = 0) =>
  `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}] ${unit} (n=${xs.length})`;

function sshSocketOf(stateDir: string, id: string): string {
  return join(stateDir, "drv", "supervisors", `${id.slice(0, 8)}.sock`);
}

interface BulkRun {
  mbPerSecond: number;
  /** CPU ms per MiB moved: ssh with its ProxyCommand, the processes in the middle, the supervisor. */
  clientCpu: number;
  middleCpu: number;
  supervisorCpu: number;
  /** Read/write system calls per MiB of the middle processes and of the supervisor (load-independent). */
  middleSyscalls: number;
  supervisorSyscalls: number;
}

/**
 * `head -c N | ssh … 'cat >/dev/null'`, connection set-up included: MB/s, and the CPU the client
 * side (bash's `times` of its children: head, ssh and the ProxyCommand ssh reaps), the `middle`
 * processes and the supervisor spent on it.
 */
function timedBulk(sshArgs: string[], middle: number[], supervisor: number): Promise<BulkRun> {
  const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const syscallsOf = (pids: number[]) => pids.reduce((sum, pid) => sum + ioSyscalls(pid), 0);
  return new Promise((resolveRun, reject) => {
    const middleBefore = cpuOf(middle);
    const supervisorBefore = cpuMs(supervisor);
    const middleCallsBefore = syscallsOf(middle);
    const supervisorCallsBefore = ioSyscalls(supervisor);
    const started = process.hrtime.bigint();
    const child = spawn(
      "bash",
      [
        "-c",
        `head -c ${MIB}M /dev/zero | ssh ${sshArgs.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ")} sandbox 'cat >/dev/null' && times`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`ssh exited ${code}`));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // `times`: the shell's user/sys, then its children's, as "0m1.234s 0m0.567s".
      const children = out.trim().split("\n").at(-1) ?? "";
      const clientMs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
        (sum, m) => sum + (Number(m[1]) * 60 + Number(m[2])) * 1000,
        0,
      );
      resolveRun({
        mbPerSecond: (MIB * 1.048576) / seconds,
        clientCpu: clientMs / MIB,
        middleCpu: (cpuOf(middle) - middleBefore) / MIB,
        supervisorCpu: (cpuMs(supervisor) - supervisorBefore) / MIB,
        middleSyscalls: (syscallsOf(middle) - middleCallsBefore) / MIB,
        supervisorSyscalls: (ioSyscalls(supervisor) - supervisorCallsBefore) / MIB,
      });
    });
  });
}

function directSshArgs(socket: string): string[] {
  return sshOptionsVia(`${process.execPath} ${UNIX_PROXY} ${socket}`);
}

async function execRoundTrips(gw: RunningGateway, sandboxId: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < EXECS + 10; i++) {
    const started = process.hrtime.bigint();
    for await (const _ of gw.grpc.execSandbox({ sandboxId, command: ["true"] })) {
      // drain
    }
    if (i >= 10) times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times;
}

async function directExecRoundTrips(socket: string): Promise<number[]> {
  const client = new Client();
  await new Promise<void>((ready, reject) => {
    client
      .on("ready", ready)
      .on("error", reject)
      .connect({ sock: net.connect(socket), username: "sandbox" });
  });
  const times: number[] = [];
  for (let i = 0; i < EXECS + 10; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((done, reject) => {
      client.exec("true", (error, stream) => {
        if (error) return reject(error);
        stream.on("close", () => done()).resume();
      });
    });
    if (i >= 10) times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  client.end();
  return times;
}

async function main() {
  const stateDir = makeStateDir();
  const workdir = makeWorkdir();
  let tls: GatewayTls | undefined;
  if (values.tls) {
    const pki = await makeTestPki(join(stateDir, "pki"));
    tls = {
      cert: pki.serverCert,
      key: pki.serverKey,
      clientCa: pki.ca,
      client: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    };
  }
  const gw = await startGatewayWithSupervisors({ stateDir, workdir, tls });
  const ids: string[] = [];
  try {
    console.log(
      `# relay-bench  node ${process.version}  ${MIB} MiB x ${RUNS} runs  gateway ${tls ? "TLS (mTLS)" : "h2c"}  (${new Date().toISOString()})`,
    );
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "bench-0" })).sandbox!.id;
    ids.push(id);
    await waitForPhase(gw, "bench-0", SandboxPhase.READY, 60_000);
    const token = (await gw.grpc.createSshSession({ sandboxId: id })).token;
    const socket = sshSocketOf(stateDir, id);
    const supervisor = supervisorPid(stateDir, id);

    const direct: BulkRun[] = [];
    const relayed: BulkRun[] = [];
    const ceiling: BulkRun[] = [];
    const chain = await startForwarderChain(socket);
    try {
      for (let run = 0; run < RUNS; run++) {
        if (PATHS.has("direct")) direct.push(await timedBulk(directSshArgs(socket), [], supervisor));
        if (PATHS.has("relay"))
          relayed.push(await timedBulk(sshOptions(gw, id, token, tls?.client), [gw.pid], supervisor));
        if (PATHS.has("forwarders"))
          ceiling.push(await timedBulk(forwarderSshArgs(chain.port), chain.pids, supervisor));
      }
    } finally {
      chain.stop();
    }
    const speed = (runs: BulkRun[]) => runs.map((r) => r.mbPerSecond);
    const cpu = (runs: BulkRun[]) =>
      `CPU ms/MiB: client ${median(runs.map((r) => r.clientCpu)).toFixed(2)}, middle ${median(runs.map((r) => r.middleCpu)).toFixed(2)}, supervisor ${median(runs.map((r) => r.supervisorCpu)).toFixed(2)}; syscalls/MiB: middle ${median(runs.map((r) => r.middleSyscalls)).toFixed(0)}, supervisor ${median(runs.map((r) => r.supervisorSyscalls)).toFixed(0)}`;
    if (direct.length > 0)
      console.log(`bulk direct to supervisor socket : ${fmt(speed(direct), "MB/s")}  ${cpu(direct)}`);
    if (relayed.length > 0)
      console.log(`bulk through gateway relay       : ${fmt(speed(relayed), "MB/s")}  ${cpu(relayed)}`);
    if (ceiling.length > 0)
      console.log(
        `bulk through 2 plain forwarders  : ${fmt(speed(ceiling), "MB/s")}  ${cpu(ceiling)}  (same hops, no HTTP/2: the ceiling)`,
      );
    const ratio = (a: BulkRun[], b: BulkRun[]) => (median(speed(a)) / median(speed(b))).toFixed(2);
    if (direct.length > 0 && relayed.length > 0 && ceiling.length > 0) {
      console.log(`ratio relay/direct (medians)     : ${ratio(relayed, direct)}`);
      console.log(`ratio forwarders/direct          : ${ratio(ceiling, direct)}`);
      console.log(`ratio relay/forwarders (goal 0.9): ${ratio(relayed, ceiling)}`);
    }

    const directExec = await directExecRoundTrips(socket);
    const gatewayExec = await execRoundTrips(gw, id);
    console.log(
      `exec direct ssh2 (open conn)     : p50 ${median(directExec).toFixed(2)} ms, p99 ${quantile(directExec, 0.99).toFixed(2)} ms`,
    );
    console.log(
      `ExecSandbox true                 : p50 ${median(gatewayExec).toFixed(2)} ms, p99 ${quantile(gatewayExec, 0.99).toFixed(2)} ms`,
    );

    const rssBefore = rssMiB(gw.pid);
    for (let i = 1; i < SANDBOXES; i++) {
      ids.push((await gw.grpc.createSandbox({ spec: {}, name: `bench-${i}` })).sandbox!.id);
    }
    for (let i = 1; i < SANDBOXES; i++) await waitForPhase(gw, `bench-${i}`, SandboxPhase.READY, 120_000);
    await new Promise((r) => setTimeout(r, 2000));
    const rssAfter = rssMiB(gw.pid);
    console.log(
      `gateway RSS: ${rssBefore.toFixed(1)} MiB with 1 session, ${rssAfter.toFixed(1)} MiB with ${SANDBOXES}: ${(((rssAfter - rssBefore) * 1024) / (SANDBOXES - 1)).toFixed(0)} KiB per idle session`,
    );

    const started = Date.now();
    const results = await Promise.allSettled(
      ids.flatMap((sandboxId) =>
        Array.from({ length: 5 }, async () => {
          let out = "";
          for await (const e of gw.grpc.execSandbox({ sandboxId, command: ["echo", "ok"] })) {
            if (e.payload.case === "stdout") out += Buffer.from(e.payload.value.data).toString();
          }
          if (out !== "ok\n") throw new Error(`unexpected output ${out}`);
        }),
      ),
    );
    const failed = results.filter((r) => r.status === "rejected");
    console.log(
      `${ids.length} sandboxes x 5 concurrent relays: ${results.length - failed.length}/${results.length} succeeded in ${Date.now() - started} ms`,
    );
    for (const f of failed.slice(0, 3)) console.log(`  failure: ${(f as PromiseRejectedResult).reason}`);
  } finally {
    // Supervisors get SIGTERM first: one that exits cleanly writes its --cpu-prof profile.
    await endSupervisors(ids.flatMap((sandboxId) => supervisorPidIfAny(stateDir, sandboxId) ?? []));
    await gw.stop("SIGTERM");
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  }
}

await main();
