// Issue 17: `sandbox stop` → `sandbox start` of one VM sandbox through the gateway, with its memory
// snapshot (save, restore: processes go on) against the same sandbox restarted from its disk (the
// snapshot removed after the stop: a cold boot) in the same run, alternated. Per run: stop (save
// only) duration, start → READY, start → first exec output; snapshot size and save time.
// Usage: bash bench/run.sh snapshot-bench.ts [--runs 5] [--mem-mib 512]
import { closeSync, openSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { makeStateDir, removeStateDir, startGateway } from "@openshell/testing/gateway-harness";
import { findRepoRoot, freePort, pidsOf, waitFor } from "@openshell/testing/process";
import { jsonLogRecords, printableConsole } from "./guest-logs.js";
import { secondsSummary as fmt, median } from "./stats.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "mem-mib": { type: "string", default: "512" },
    // Prints what the guest's console said during the first snapshot start (where a restore waits).
    "show-console": { type: "boolean", default: false },
  },
});
const RUNS = Number(values.runs);
const REPO = findRepoRoot(import.meta.dirname);

const stateDir = makeStateDir();
const port = await freePort();
const gw = await startGateway({
  stateDir,
  port,
  driver: { name: "vm", dir: join(REPO, "packages", "driver-vm", "dist") },
  env: { OPENSHELL_VM_TEMPLATES: "off" }, // cold boots: what this bench measures
  extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--vm-mem-mib", values["mem-mib"] as string],
  startTimeoutMs: 30_000,
});

async function execEcho(sandboxId: string): Promise<void> {
  let out = "";
  for await (const e of gw.grpc.execSandbox({ sandboxId, command: ["echo", "ok"] }))
    if (e.payload.case === "stdout") out += Buffer.from(e.payload.value.data).toString();
  if (out !== "ok\n") throw new Error(`unexpected exec output ${out}`);
}

const ready = (name: string) =>
  waitFor(
    async () => (await gw.grpc.getSandbox({ name })).sandbox?.phase === SandboxPhase.READY,
    300_000,
    () => `${name} not READY`,
  );

/** Resolves with the time (ms since the epoch) the watch stream first shows sandbox `id` READY. */
async function readyFromWatch(id: string): Promise<number> {
  const abort = new AbortController();
  const stream = gw.grpc.watchSandbox({ id, followStatus: true }, { signal: abort.signal });
  const iterator = stream[Symbol.asyncIterator]();
  try {
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) throw new Error(`the watch of ${id} ended before READY`);
      if (value.payload.case === "sandbox" && value.payload.value.phase === SandboxPhase.READY)
        return Date.now();
    }
  } finally {
    abort.abort();
  }
}

try {
  console.log(
    `# snapshot-bench  node ${process.version}  ${values["mem-mib"]} MiB guest, ${RUNS} runs per path`,
  );
  const name = "bench-snap";
  const id = (await gw.grpc.createSandbox({ name, spec: {} })).sandbox!.id;
  await ready(name);
  await execEcho(id);
  const dir = join(stateDir, "drv", "sandboxes", id);
  const samples = {
    snapshot: { stop: [] as number[], ready: [] as number[], exec: [] as number[] },
    cold: { stop: [] as number[], ready: [] as number[], exec: [] as number[] },
  };
  const sizes: number[] = [];
  /** Milliseconds from the start request to each milestone of a restore (see restorePhases). */
  const breakdown: Record<string, number[]> = {};
  const saves: number[] = [];
  for (let i = 0; i < 2 * RUNS; i++) {
    const path = i % 2 === 0 ? "snapshot" : "cold";
    let t = Date.now();
    await gw.grpc.stopSandbox({ name });
    samples[path].stop.push(Date.now() - t);
    const meta = JSON.parse(readFileSync(join(dir, "snapshot.json"), "utf8")) as {
      bytes: number;
      saveMs: number;
    };
    if (path === "snapshot") {
      sizes.push(meta.bytes);
      saves.push(meta.saveMs);
    } else {
      // The same stop, then the snapshot removed: start boots the disk (the fallback path).
      for (const f of ["snapshot.json", "memory.snap"]) rmSync(join(dir, f), { force: true });
    }
    if (pidsOf(/^qemu-system/, stateDir).length) throw new Error("QEMU still runs after stop");
    const consoleOffset = statSync(join(dir, "console.log")).size;
    const gatewayOffset = gw.output().length;
    // READY as `openshell sandbox start` sees it: the watch stream's status event (a poll adds its interval).
    const watched = readyFromWatch(id);
    t = Date.now();
    await gw.grpc.startSandbox({ name });
    const rpcMs = Date.now() - t;
    samples[path].ready.push((await watched) - t);
    await execEcho(id);
    samples[path].exec.push(Date.now() - t);
    if (path === "snapshot") {
      if (values["show-console"] && !breakdown.rpc)
        console.log(printableConsole(readFrom(join(dir, "console.log"), consoleOffset)));
      const phases = restorePhases(
        t,
        gw.output().slice(gatewayOffset),
        readFrom(join(dir, "console.log"), consoleOffset),
      );
      phases.rpc = rpcMs;
      for (const [phase, ms] of Object.entries(phases)) breakdown[phase] = [...(breakdown[phase] ?? []), ms];
    }
  }
  for (const path of ["snapshot", "cold"] as const) {
    // The cold path's stop saved too (the snapshot is removed afterwards): only the snapshot path's is quoted.
    if (path === "snapshot") console.log(`${path.padEnd(8)} stop (save) ${fmt(samples[path].stop)}`);
    console.log(`${path.padEnd(8)} start → READY ${fmt(samples[path].ready)}`);
    console.log(`${path.padEnd(8)} start → first exec ${fmt(samples[path].exec)}`);
  }
  console.log(
    `ratio snapshot/cold start → first exec p50: ${(median(samples.snapshot.exec) / median(samples.cold.exec)).toFixed(2)}`,
  );
  console.log("snapshot start, ms from the StartSandbox request to each milestone (p50 [min–max]):");
  for (const [phase, ms] of Object.entries(breakdown))
    console.log(`  ${phase.padEnd(28)} ${median(ms).toFixed(0)} [${Math.min(...ms)}–${Math.max(...ms)}]`);
  console.log(
    `snapshot size p50 ${(median(sizes) / 2 ** 20).toFixed(0)} MiB, save (guest sync + migrate, without the hash) ${fmt(saves)}`,
  );
} finally {
  await gw.stop("SIGTERM");
  for (const pid of pidsOf(/^qemu-system/, stateDir)) process.kill(pid, "SIGKILL");
  removeStateDir(stateDir);
}

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, "r");
  try {
    const buffer = Buffer.alloc(Math.max(0, statSync(file).size - offset));
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * Where a restore's time goes, from the gateway's log (its driver's lines) and the guest console
 * (the supervisor's JSON lines carry the guest's wall clock, set from the host's at the restore):
 * ms after `t0` (the StartSandbox request) of QEMU having loaded the snapshot (the driver's
 * restore_ms, which includes waiting for the file's hash), the supervisor's SIGUSR2, its new
 * gateway session as the gateway registered it and as the supervisor saw it accepted, and READY
 * stored by the gateway. The rest of start → READY is the watch event reaching the bench.
 */
function restorePhases(t0: number, gatewayLog: string, consoleText: string): Record<string, number> {
  const phases: Record<string, number> = {};
  for (const record of jsonLogRecords<{ restore_ms: number }>(gatewayLog)) {
    const at = Date.parse(record.time ?? "") - t0;
    if (record.msg === "supervisor session established") phases["gateway: session registered"] ??= at;
    if (record.msg?.endsWith("-> READY")) phases["gateway: READY stored"] ??= at;
    if (record.msg !== "VM restored from its memory snapshot") continue;
    phases["driver: QEMU loaded + cont"] = at;
    if (record.restore_ms !== undefined) phases["driver: restore_ms"] = record.restore_ms;
  }
  for (const record of jsonLogRecords(consoleText)) {
    const at = Date.parse(record.time ?? "") - t0;
    if (record.msg?.startsWith("asked to reconnect")) phases["guest: supervisor SIGUSR2"] ??= at;
    if (record.msg?.includes("supervisor session established")) phases["guest: session established"] ??= at;
  }
  return phases;
}
