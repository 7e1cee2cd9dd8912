// Host resources of one VM sandbox (issue 10 item 5): QEMU's resident memory idle and after a
// 1.5 GB write-and-delete in /sandbox, next to what the guest itself uses (`free`), and the space
// the sandbox's qcow2 overlay holds on the host before, full and after the delete; for several TCG
// translation-cache sizes (--tcg-tb-mib; 1024 = QEMU's own default, the baseline) in one run, with
// the time of CPU-bound commands in the guest so a smaller cache's cost shows.
// A variant "256-nofpr" runs that cache size with the guest's free page reporting off, the baseline
// for what the balloon gives back after the delete.
// Usage: bash bench/run.sh vm-resources-bench.ts [--tb 1024,256,256-nofpr,128,64] [--mem-mib 1024] [--write-mb 1500] [--rounds 5]
import { statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { findRepoRoot, freePort, pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput } from "@openshell/testing/sandbox-harness";
import { rssMiB } from "./proc-stats.js";
import { median } from "./stats.js";

const { values } = parseArgs({
  options: {
    tb: { type: "string", default: "1024,256,128,64" },
    "mem-mib": { type: "string", default: "1024" },
    "write-mb": { type: "string", default: "1500" },
    rounds: { type: "string", default: "5" },
  },
});
const TB_VARIANTS = (values.tb as string).split(",").map((spec) => ({
  tb: Number.parseInt(spec, 10),
  freePageReporting: !spec.endsWith("-nofpr"),
  label: spec,
}));
const MEM_MIB = Number(values["mem-mib"]);
const WRITE_MB = Number(values["write-mb"]);
const ROUNDS = Number(values.rounds);
const REPO = findRepoRoot(import.meta.dirname);
const MiB = 2 ** 20;

/** CPU-bound guest commands whose code footprint differs: Node (JIT), Python, many small execs. */
const WORKLOADS: Record<string, string> = {
  node: "/opt/openshell/node/bin/node -e 'let s=0; for (let i=0;i<2e7;i++) s+=i%7; JSON.stringify(require(\"os\").cpus())'",
  python:
    "python3 -c 'import json, email.parser, http.client, decimal; print(sum(i*i for i in range(400000)))'",
  "50 execs": "for i in $(seq 50); do /bin/true; done",
};

async function exec(gw: RunningGateway, sandboxId: string, script: string): Promise<string> {
  const result = await execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }));
  if (result.exitCode !== 0) throw new Error(`${script} exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout.trim();
}

const guestUsedMiB = (gw: RunningGateway, id: string) =>
  exec(gw, id, "free -m | awk '/Mem:/{print $3}'").then(Number);
const allocatedMiB = (file: string) => (statSync(file).blocks * 512) / MiB;
const settle = () => new Promise((r) => setTimeout(r, 5_000));

interface Variant {
  label: string;
  tb: number;
  gw: RunningGateway;
  id: string;
  pid: number;
  disk: string;
  readyS: number;
}

interface Row {
  label: string;
  tb: number;
  readyS: number;
  idleRss: number;
  idleGuest: number;
  workloads: Record<string, number>;
  afterRss: number;
  afterGuest: number;
  diskEmpty: number;
  diskFull: number;
  diskAfter: number;
}

/** One gateway (its driver started with this cache size) and one sandbox on it, READY. */
async function start(
  { tb, freePageReporting, label }: (typeof TB_VARIANTS)[number],
  stateDirs: string[],
): Promise<Variant> {
  const stateDir = makeStateDir();
  stateDirs.push(stateDir);
  const port = await freePort();
  const gw = await startGateway({
    stateDir,
    port,
    driver: { name: "vm", dir: join(REPO, "packages", "driver-vm", "dist") },
    extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--vm-mem-mib", String(MEM_MIB)],
    env: {
      OPENSHELL_VM_TEMPLATES: "off", // cold boots: what this bench measures

      OPENSHELL_VM_TCG_TB_MIB: String(tb),
      OPENSHELL_VM_FREE_PAGE_REPORTING: freePageReporting ? "on" : "off",
    },
    startTimeoutMs: 30_000,
  });
  const started = Date.now();
  const id = (await gw.grpc.createSandbox({ name: `tb-${tb}`, spec: {} })).sandbox?.id as string;
  await waitFor(
    async () => (await gw.grpc.getSandbox({ name: `tb-${tb}` })).sandbox?.phase === SandboxPhase.READY,
    240_000,
    () => `tb-${tb} not READY`,
  );
  const [pid] = pidsOf(/^qemu-system/, stateDir);
  if (!pid) throw new Error("no QEMU");
  const disk = join(stateDir, "drv", "sandboxes", id, "disk.qcow2");
  return { label, tb, gw, id, pid, disk, readyS: (Date.now() - started) / 1000 };
}

console.log(
  `# vm-resources-bench  node ${process.version}  guest ${MEM_MIB} MiB, 2 vCPUs, TCG; write-and-delete ${WRITE_MB} MB in /sandbox; workloads ${ROUNDS} rounds interleaved across the variants`,
);
const stateDirs: string[] = [];
const variants: Variant[] = [];
try {
  // One VM per cache size, booted one after another, all kept running: the workloads then
  // alternate between them, so the host's drift hits every variant alike.
  for (const variant of TB_VARIANTS) variants.push(await start(variant, stateDirs));
  await settle();
  const rows: Row[] = [];
  for (const v of variants)
    rows.push({
      label: v.label,
      tb: v.tb,
      readyS: v.readyS,
      idleRss: rssMiB(v.pid),
      idleGuest: await guestUsedMiB(v.gw, v.id),
      workloads: {},
      afterRss: 0,
      afterGuest: 0,
      diskEmpty: allocatedMiB(v.disk),
      diskFull: 0,
      diskAfter: 0,
    });
  const samples = variants.map(() => new Map<string, number[]>());
  for (let round = 0; round < ROUNDS; round++)
    for (const [name, script] of Object.entries(WORKLOADS))
      for (const [i, v] of variants.entries()) {
        const t0 = Date.now();
        await exec(v.gw, v.id, script);
        const times = samples[i]?.get(name) ?? [];
        times.push(Date.now() - t0);
        samples[i]?.set(name, times);
      }
  for (const [i, v] of variants.entries()) {
    const row = rows[i] as Row;
    for (const [name, times] of samples[i] ?? []) row.workloads[name] = median(times) / 1000;
    await exec(v.gw, v.id, `head -c ${WRITE_MB}M /dev/urandom > /sandbox/big && sync`);
    row.diskFull = allocatedMiB(v.disk);
    await exec(v.gw, v.id, "rm /sandbox/big && sync");
    await settle();
    row.afterRss = rssMiB(v.pid);
    row.afterGuest = await guestUsedMiB(v.gw, v.id);
    row.diskAfter = allocatedMiB(v.disk);
  }
  const f = (n: number) => n.toFixed(0).padStart(5);
  for (const row of rows)
    console.log(
      `tb-size ${row.label.padStart(10)} MiB: READY ${row.readyS.toFixed(1)} s | idle: QEMU RSS ${f(row.idleRss)} MiB, guest used ${f(row.idleGuest)} MiB | ` +
        `p50 ${Object.entries(row.workloads)
          .map(([name, s]) => `${name} ${s.toFixed(2)} s`)
          .join(
            ", ",
          )} | after write+delete: QEMU RSS ${f(row.afterRss)} MiB, guest used ${f(row.afterGuest)} MiB | ` +
        `overlay on host ${f(row.diskEmpty)} → ${f(row.diskFull)} → ${f(row.diskAfter)} MiB`,
    );
  console.log(JSON.stringify(rows));
} finally {
  for (const v of variants) await v.gw.stop("SIGTERM");
  for (const dir of stateDirs) {
    for (const pid of pidsOf(/^qemu-system/, dir)) process.kill(pid, "SIGKILL");
    removeStateDir(dir);
  }
}
