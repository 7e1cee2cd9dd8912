// Docker driver benchmark (issue 16): create → READY and create → first exec output, p50 of N,
// beside the VM driver's figure measured in the same run; memory of idle sandbox containers.
// Usage: bash bench/run.sh docker-bench.ts [--runs 10] [--vm-runs 3] [--idle 10]
// Needs root (a private dockerd: /run/openshell-dd-docker, /var/lib/openshell-dd-docker,
// 10.215.0.0/16), mmdebstrap (the Debian test image, cached) and, for the VM figure, the staged runtime.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { startDockerDaemon } from "@openshell/testing/docker-harness";
import {
  importDebianSandboxImage,
  stageSupervisorBin,
} from "@openshell/testing/fake-kubernetes/sandbox-images";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { findRepoRoot, freePort, pidsOf, waitFor } from "@openshell/testing/process";
import { secondsSummary as fmt, median } from "./stats.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    "vm-runs": { type: "string", default: "3" },
    idle: { type: "string", default: "10" },
  },
});
const REPO = findRepoRoot(import.meta.dirname);

async function timeCreates(gw: RunningGateway, prefix: string, runs: number) {
  const toReady: number[] = [];
  const toExec: number[] = [];
  for (let i = 0; i < runs; i++) {
    const name = `${prefix}-${i}`;
    const started = Date.now();
    const id = (await gw.grpc.createSandbox({ name, spec: {} })).sandbox?.id as string;
    await waitFor(
      async () => (await gw.grpc.getSandbox({ name })).sandbox?.phase === SandboxPhase.READY,
      240_000,
      () => `${name} not READY`,
    );
    toReady.push(Date.now() - started);
    let out = "";
    for await (const e of gw.grpc.execSandbox({ sandboxId: id, command: ["echo", "ok"] })) {
      if (e.payload.case === "stdout") out += Buffer.from(e.payload.value.data).toString();
    }
    if (out !== "ok\n") throw new Error(`unexpected exec output ${out}`);
    toExec.push(Date.now() - started);
    await gw.grpc.deleteSandbox({ name });
    await waitFor(
      async () => (await gw.grpc.listSandboxes({})).sandboxes.length === 0,
      60_000,
      () => `${name} not deleted`,
    );
  }
  return { toReady, toExec };
}

const daemon = await startDockerDaemon({
  runDir: "/run/openshell-dd-docker",
  dataRoot: "/var/lib/openshell-dd-docker",
  addressPool: "base=10.215.0.0/16,size=24",
});
const work = mkdtempSync(join(tmpdir(), "osdd-bench-"));
const dirs: string[] = [];
const gateways: RunningGateway[] = [];
try {
  const image = await importDebianSandboxImage(daemon);
  const bin = join(work, "bin");
  stageSupervisorBin(bin);
  const stateDir = makeStateDir();
  dirs.push(stateDir);
  const port = await freePort();
  const docker = await startGateway({
    stateDir,
    port,
    driver: { name: "docker", dir: join(REPO, "packages", "driver-docker", "dist") },
    extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--sandbox-image", image],
    env: {
      DOCKER_HOST: daemon.host,
      OPENSHELL_SUPERVISOR_BIN_DIR: bin,
      OPENSHELL_DOCKER_NETWORK: "openshell-dd-bench",
    },
    startTimeoutMs: 60_000,
  });
  gateways.push(docker);
  console.log(`# docker-bench  node ${process.version}  image ${image}`);
  const dockerTimes = await timeCreates(docker, "bench-dd", Number(values.runs));
  console.log(`docker create → READY      : ${fmt(dockerTimes.toReady)}`);
  console.log(`docker create → first exec : ${fmt(dockerTimes.toExec)}`);

  // Idle sandboxes: the memory cgroup of each container (the supervisor, its Node, the workload).
  const idle = Number(values.idle);
  for (let i = 0; i < idle; i++) await docker.grpc.createSandbox({ name: `bench-idle-${i}`, spec: {} });
  await waitFor(
    async () =>
      (await docker.grpc.listSandboxes({})).sandboxes.filter((s) => s.phase === SandboxPhase.READY).length ===
      idle,
    600_000,
    () => "idle sandboxes not READY",
  );
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const stats = await daemon.docker([
    "stats",
    "--no-stream",
    "--format",
    "{{.MemUsage}}",
    ...Array.from({ length: idle }, (_, i) => `openshell-bench-idle-${i}`),
  ]);
  const mib = stats.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [value = "0", unit = "MiB"] = /^([\d.]+)\s*([KMG]i?B)/.exec(line)?.slice(1) ?? [];
      return Number(value) * (unit.startsWith("G") ? 1024 : unit.startsWith("K") ? 1 / 1024 : 1);
    });
  console.log(
    `idle sandbox memory (${idle} containers, docker stats): p50 ${median(mib).toFixed(0)} MiB, total ${mib.reduce((a, b) => a + b, 0).toFixed(0)} MiB`,
  );
  for (let i = 0; i < idle; i++) await docker.grpc.deleteSandbox({ name: `bench-idle-${i}` });

  const vmRuns = Number(values["vm-runs"]);
  if (vmRuns > 0) {
    const vmState = makeStateDir();
    dirs.push(vmState);
    const vmPort = await freePort();
    const vm = await startGateway({
      stateDir: vmState,
      port: vmPort,
      driver: { name: "vm", dir: join(REPO, "packages", "driver-vm", "dist") },
      env: { OPENSHELL_VM_TEMPLATES: "off" }, // cold boots: what this bench measures
      extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${vmPort}`, "--vm-mem-mib", "1024"],
      startTimeoutMs: 60_000,
    });
    gateways.push(vm);
    const vmTimes = await timeCreates(vm, "bench-vm", vmRuns);
    console.log(`vm     create → READY      : ${fmt(vmTimes.toReady)}`);
    console.log(`vm     create → first exec : ${fmt(vmTimes.toExec)}`);
    console.log(
      `first exec, docker / vm   : ${(median(dockerTimes.toExec) / median(vmTimes.toExec)).toFixed(2)}× (p50s of this run)`,
    );
  }
} finally {
  for (const gw of gateways) await gw.stop("SIGTERM");
  for (const dir of dirs) {
    for (const pid of pidsOf(/^qemu-system/, dir)) process.kill(pid, "SIGKILL");
    removeStateDir(dir);
  }
  await daemon.removeMatching("label=openshell.ai/managed-by=openshell");
  await daemon.stop();
  rmSync(work, { recursive: true, force: true });
}
