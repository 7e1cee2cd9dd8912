// Issue 17: `sandbox create` → READY and → first exec output of VM sandboxes restored from the
// driver's template snapshot against cold boots, in the same run: two gateways on one host, one
// with OPENSHELL_VM_TEMPLATES=on (the template made by a first, unmeasured create) and one without,
// creates alternating between them; each sandbox is deleted before the next create.
// Usage: bash bench/run.sh template-bench.ts [--runs 5]
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { printableConsole } from "./guest-logs.js";
import { secondsSummary as fmt, median } from "./stats.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, "show-console": { type: "boolean", default: false } },
});
const RUNS = Number(values.runs);

const dirs = [makeStateDir(), makeStateDir()];
const gateways: RunningGateway[] = [];

async function execEcho(gw: RunningGateway, sandboxId: string): Promise<void> {
  let out = "";
  for await (const e of gw.grpc.execSandbox({ sandboxId, command: ["echo", "ok"] }))
    if (e.payload.case === "stdout") out += Buffer.from(e.payload.value.data).toString();
  if (out !== "ok\n") throw new Error(`unexpected exec output ${out}`);
}

/**
 * create → READY and → first exec (ms), then deletes the sandbox and waits until its QEMU is gone;
 * with `consoleOf` (the gateway's state dir) prints the guest's console first.
 */
async function createOnce(gw: RunningGateway, name: string, consoleOf?: string): Promise<[number, number]> {
  const started = Date.now();
  const id = (await gw.grpc.createSandbox({ name, spec: {} })).sandbox!.id;
  await waitFor(
    async () => (await gw.grpc.getSandbox({ name })).sandbox?.phase === SandboxPhase.READY,
    300_000,
    () => `${name} not READY`,
  );
  const ready = Date.now() - started;
  await execEcho(gw, id);
  const exec = Date.now() - started;
  if (consoleOf) {
    const text = readFileSync(join(consoleOf, "drv", "sandboxes", id, "console.log"), "utf8");
    console.log(printableConsole(text));
  }
  await gw.grpc.deleteSandbox({ name });
  await waitFor(
    async () => (await gw.grpc.listSandboxes({})).sandboxes.length === 0,
    120_000,
    () => `${name} not deleted`,
  );
  return [ready, exec];
}

try {
  const withTemplates = await startVmGateway({
    stateDir: dirs[0] as string,
    env: { OPENSHELL_VM_TEMPLATES: "on" },
  });
  gateways.push(withTemplates);
  const cold = await startVmGateway({ stateDir: dirs[1] as string });
  gateways.push(cold);
  console.log(`# template-bench  node ${process.version}  512 MiB guests, ${RUNS} creates per path`);
  // The first create boots cold and makes the template (not measured).
  const makeStarted = Date.now();
  await createOnce(withTemplates, "bench-tpl-first");
  const templates = join(dirs[0] as string, "drv", "templates");
  await waitFor(
    () =>
      existsSync(templates) &&
      readdirSync(templates).some((d) => existsSync(join(templates, d, "snapshot.json"))),
    600_000,
    () => "no template",
  );
  console.log(`template ready ${((Date.now() - makeStarted) / 1000).toFixed(1)} s after the first create`);
  const samples = {
    template: { ready: [] as number[], exec: [] as number[] },
    cold: { ready: [] as number[], exec: [] as number[] },
  };
  for (let i = 0; i < RUNS; i++) {
    const showConsole = values["show-console"] && i === RUNS - 1;
    const [tReady, tExec] = await createOnce(
      withTemplates,
      `bench-tpl-${i}`,
      showConsole ? dirs[0] : undefined,
    );
    samples.template.ready.push(tReady);
    samples.template.exec.push(tExec);
    const [cReady, cExec] = await createOnce(cold, `bench-cold-${i}`);
    samples.cold.ready.push(cReady);
    samples.cold.exec.push(cExec);
  }
  for (const path of ["template", "cold"] as const) {
    console.log(`${path.padEnd(8)} create → READY ${fmt(samples[path].ready)}`);
    console.log(`${path.padEnd(8)} create → first exec ${fmt(samples[path].exec)}`);
  }
  console.log(
    `ratio template/cold create → first exec p50: ${(median(samples.template.exec) / median(samples.cold.exec)).toFixed(2)}`,
  );
} finally {
  for (const gw of gateways) await gw.stop("SIGTERM");
  for (const dir of dirs) {
    for (const pid of pidsOf(/^qemu-system/, dir)) process.kill(pid, "SIGKILL");
    removeStateDir(dir);
  }
}
