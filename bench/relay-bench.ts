// Relay benchmarks for issue 3. Prints every figure with its same-run baseline:
//  1. bulk: OpenSSH sends N MiB into `cat` through ssh-proxy + gateway + relay, vs the same client
//     talking straight to the supervisor's Unix socket;
//  2. warm ExecSandbox round trip of `true` (p50/p99 over 200) vs an ssh2 exec on an open connection
//     to the same supervisor socket;
//  3. 20 sandboxes x 5 concurrent relays, and gateway memory per idle supervisor session.
// Usage: bash bench/run.sh relay-bench.ts [--mib 256] [--runs 5] [--sandboxes 20]
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import net from "node:net";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { makeStateDir, type RunningGateway } from "@openshell/testing/gateway-harness";
import { isAlive } from "@openshell/testing/process";
import {
  makeWorkdir,
  sshOptions,
  sshOptionsVia,
  startGatewayWithSupervisors,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { Client } from "ssh2";
import { rssMiB } from "./proc-stats.js";
import { median, quantile } from "./stats.js";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    runs: { type: "string", default: "5" },
    sandboxes: { type: "string", default: "20" },
    execs: { type: "string", default: "200" },
  },
});
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
async function startForwarderChain(socket: string): Promise<{ port: number; stop: () => void }> {
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

/** Seconds for `head -c N | ssh … 'cat >/dev/null'`, connection set-up included. */
function timedBulk(sshArgs: string[]): Promise<number> {
  return new Promise((resolveTime, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(
      "bash",
      [
        "-c",
        `head -c ${MIB}M /dev/zero | ssh ${sshArgs.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ")} sandbox 'cat >/dev/null'`,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`ssh exited ${code}`));
      resolveTime(Number(process.hrtime.bigint() - started) / 1e9);
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
  const gw = await startGatewayWithSupervisors({ stateDir, workdir });
  const ids: string[] = [];
  try {
    console.log(
      `# relay-bench  node ${process.version}  ${MIB} MiB x ${RUNS} runs  (${new Date().toISOString()})`,
    );
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "bench-0" })).sandbox!.id;
    ids.push(id);
    await waitForPhase(gw, "bench-0", SandboxPhase.READY, 60_000);
    const token = (await gw.grpc.createSshSession({ sandboxId: id })).token;
    const socket = sshSocketOf(stateDir, id);

    const direct: number[] = [];
    const relayed: number[] = [];
    const ceiling: number[] = [];
    const chain = await startForwarderChain(socket);
    try {
      for (let run = 0; run < RUNS; run++) {
        direct.push((MIB * 1.048576) / (await timedBulk(directSshArgs(socket))));
        relayed.push((MIB * 1.048576) / (await timedBulk(sshOptions(gw, id, token))));
        ceiling.push((MIB * 1.048576) / (await timedBulk(forwarderSshArgs(chain.port))));
      }
    } finally {
      chain.stop();
    }
    console.log(`bulk direct to supervisor socket : ${fmt(direct, "MB/s")}`);
    console.log(`bulk through gateway relay       : ${fmt(relayed, "MB/s")}`);
    console.log(
      `bulk through 2 plain forwarders  : ${fmt(ceiling, "MB/s")}  (same hops, no HTTP/2: the ceiling)`,
    );
    console.log(`ratio relay/direct (medians)     : ${(median(relayed) / median(direct)).toFixed(2)}`);
    console.log(`ratio forwarders/direct          : ${(median(ceiling) / median(direct)).toFixed(2)}`);

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
    await gw.stop("SIGTERM");
    for (const sandboxId of ids) {
      try {
        const pid = supervisorPid(stateDir, sandboxId);
        if (isAlive(pid)) process.kill(pid, "SIGKILL");
      } catch {
        // never started
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  }
}

await main();
