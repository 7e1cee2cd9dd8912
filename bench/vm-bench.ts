// VM driver benchmarks (issue 4): create → READY and create → first exec output, p50 of N, with
// the accelerator the driver chose; host RSS of one idle VM's QEMU process and guest memory use.
// Usage: bash bench/run.sh vm-bench.ts [--runs 5]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { makeStateDir, removeStateDir, startGateway } from "@openshell/testing/gateway-harness";
import { findRepoRoot, freePort, pidsOf, waitFor } from "@openshell/testing/process";
import { rssMiB } from "./proc-stats.js";
import { secondsSummary as fmt } from "./stats.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const RUNS = Number(values.runs);
const REPO = findRepoRoot(import.meta.dirname);

const qemuPids = (stateDir: string) => pidsOf(/^qemu-system/, stateDir);

const stateDir = makeStateDir();
const port = await freePort();
const gw = await startGateway({
  stateDir,
  port,
  driver: { name: "vm", dir: join(REPO, "packages", "driver-vm", "dist") },
  env: { OPENSHELL_VM_TEMPLATES: "off" }, // cold boots: what this bench measures
  extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--vm-mem-mib", "1024"],
  startTimeoutMs: 30_000,
});
try {
  const accel = /"accelerator":"(\w+)"[^}]*"msg":"([^"]*)"/.exec(gw.output());
  console.log(`# vm-bench  node ${process.version}  accelerator ${accel?.[1]} (${accel?.[2]})`);
  const toReady: number[] = [];
  const toExec: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const name = `bench-vm-${i}`;
    const started = Date.now();
    const id = (await gw.grpc.createSandbox({ name, spec: {} })).sandbox!.id;
    await waitFor(
      async () => (await gw.grpc.getSandbox({ name })).sandbox?.phase === SandboxPhase.READY,
      180_000,
      () => `${name} not READY`,
    );
    toReady.push(Date.now() - started);
    let out = "";
    for await (const e of gw.grpc.execSandbox({ sandboxId: id, command: ["echo", "ok"] })) {
      if (e.payload.case === "stdout") out += Buffer.from(e.payload.value.data).toString();
    }
    if (out !== "ok\n") throw new Error(`unexpected exec output ${out}`);
    toExec.push(Date.now() - started);
    if (i === RUNS - 1) {
      await new Promise((r) => setTimeout(r, 3000));
      const [pid] = qemuPids(stateDir);
      let guest = "";
      for await (const e of gw.grpc.execSandbox({
        sandboxId: id,
        command: ["sh", "-c", "free -m | awk '/Mem:/{print $3}'"],
      })) {
        if (e.payload.case === "stdout") guest += Buffer.from(e.payload.value.data).toString();
      }
      console.log(
        `idle sandbox: QEMU host RSS ${pid ? rssMiB(pid).toFixed(0) : "?"} MiB (guest RAM 1024 MiB), guest used ${guest.trim()} MiB`,
      );
    }
    await gw.grpc.deleteSandbox({ name });
    await waitFor(
      async () => qemuPids(stateDir).length === 0,
      60_000,
      () => "qemu left after delete",
    );
  }
  console.log(`create → READY        : ${fmt(toReady)}`);
  console.log(`create → first exec   : ${fmt(toExec)}`);
} finally {
  await gw.stop("SIGTERM");
  for (const pid of qemuPids(stateDir)) process.kill(pid, "SIGKILL");
  removeStateDir(stateDir);
}
