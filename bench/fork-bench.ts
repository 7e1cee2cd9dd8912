// Issue 17: `sandbox fork` of a READY VM sandbox → the copy READY and → its first exec output,
// against a cold `sandbox create` in the same run on the same gateway (alternated); and how long
// the source paused for each copy (from the driver's Forked event). Each copy is deleted before
// the next one.
// Usage: bash bench/run.sh fork-bench.ts [--runs 5]
import { parseArgs } from "node:util";
import { type PlatformEvent, SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { secondsSummary as fmt, median } from "./stats.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const RUNS = Number(values.runs);
const dir = makeStateDir();

async function ready(gw: RunningGateway, name: string): Promise<void> {
  await waitFor(
    async () => (await gw.grpc.getSandbox({ name })).sandbox?.phase === SandboxPhase.READY,
    300_000,
    () => `${name} not READY`,
  );
}

async function execEcho(gw: RunningGateway, sandboxId: string): Promise<void> {
  let out = "";
  for await (const e of gw.grpc.execSandbox({ sandboxId, command: ["echo", "ok"] }))
    if (e.payload.case === "stdout") out += Buffer.from(e.payload.value.data).toString();
  if (out !== "ok\n") throw new Error(`unexpected exec output ${out}`);
}

async function remove(gw: RunningGateway, name: string): Promise<void> {
  await gw.grpc.deleteSandbox({ name });
  await waitFor(
    async () => !(await gw.grpc.listSandboxes({})).sandboxes.some((s) => s.name === name),
    120_000,
    () => `${name} not deleted`,
  );
}

/** The copy's Forked event (its message names the source's pause). */
async function forkedEvent(gw: RunningGateway, id: string): Promise<PlatformEvent | undefined> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 5_000);
  try {
    for await (const e of gw.grpc.watchSandbox(
      { id, followEvents: true, eventTail: 100 },
      { signal: abort.signal },
    ))
      if (e.payload.case === "event" && e.payload.value.reason === "Forked") return e.payload.value;
  } catch {
    // aborted
  } finally {
    clearTimeout(timer);
  }
  return undefined;
}

let gw: RunningGateway | undefined;
try {
  gw = await startVmGateway({ stateDir: dir });
  console.log(
    `# fork-bench  node ${process.version}  512 MiB guests, ${RUNS} forks and ${RUNS} cold creates`,
  );
  const source = (await gw.grpc.createSandbox({ name: "bench-source", spec: {} })).sandbox?.id as string;
  await ready(gw, "bench-source");
  await execEcho(gw, source);
  const samples = {
    fork: { ready: [] as number[], exec: [] as number[] },
    cold: { ready: [] as number[], exec: [] as number[] },
  };
  const pauses: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let started = Date.now();
    const copy = (await gw.grpc.forkSandbox({ name: "bench-source", newName: `bench-fork-${i}` })).sandbox
      ?.id as string;
    await ready(gw, `bench-fork-${i}`);
    samples.fork.ready.push(Date.now() - started);
    await execEcho(gw, copy);
    samples.fork.exec.push(Date.now() - started);
    const paused = /the source paused ([\d.]+) s/.exec((await forkedEvent(gw, copy))?.message ?? "")?.[1];
    if (paused) pauses.push(Number(paused) * 1000);
    await remove(gw, `bench-fork-${i}`);

    started = Date.now();
    const cold = (await gw.grpc.createSandbox({ name: `bench-cold-${i}`, spec: {} })).sandbox?.id as string;
    await ready(gw, `bench-cold-${i}`);
    samples.cold.ready.push(Date.now() - started);
    await execEcho(gw, cold);
    samples.cold.exec.push(Date.now() - started);
    await remove(gw, `bench-cold-${i}`);
  }
  await execEcho(gw, source); // the source still answers after all the copies
  for (const path of ["fork", "cold"] as const) {
    console.log(`${path.padEnd(5)} → READY ${fmt(samples[path].ready)}`);
    console.log(`${path.padEnd(5)} → first exec ${fmt(samples[path].exec)}`);
  }
  console.log(`source paused per fork ${fmt(pauses)}`);
  console.log(
    `ratio fork/cold → first exec p50: ${(median(samples.fork.exec) / median(samples.cold.exec)).toFixed(2)}`,
  );
} finally {
  await gw?.stop("SIGTERM");
  for (const pid of pidsOf(/^qemu-system/, dir)) process.kill(pid, "SIGKILL");
  removeStateDir(dir);
}
