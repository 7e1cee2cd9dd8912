// Guest boot benchmark (issue 4): boots the staged runtime with the driver's own QEMU command line,
// interleaving the way the driver boots (uncompressed PVH kernel, kernel crypto self-tests off)
// with the baseline it replaced (bzImage, self-tests on), and reports p50 wall time from QEMU's
// launch to the init's "ready" and to the supervisor's SSH:LISTEN. The supervisor dials an
// unreachable endpoint, so no gateway is involved. Usage: bash bench/run.sh boot-bench.ts [--runs 5]
// With --baseline-runtime DIR (a runtime root or one runtime's directory, e.g. staged from an
// older commit) it compares that runtime with the current one instead, both booted the driver's
// way, and prints both images' sizes (issue 10 item 12: the image with the agent tools).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { hostTscKhz } from "@openshell/driver-vm/host-tsc";
import { qemuArgs } from "@openshell/driver-vm/qemu-command";
import { locateVmRuntime, type VmRuntime } from "@openshell/driver-vm/vm-runtime";
import { secondsSummary as fmt, median } from "./stats.js";
import { createOverlay } from "./vm-overlay.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, "baseline-runtime": { type: "string" } },
});
const RUNS = Number(values.runs);
const runtime = locateVmRuntime();

interface Variant {
  name: string;
  runtime: VmRuntime;
  kernel: string;
  /** Rewrites the driver's kernel command line. */
  cmdline: (driver: string) => string;
}

function runtimeAt(dir: string): VmRuntime {
  // A runtime root has `current`; one runtime's directory has its manifest.
  if (existsSync(join(dir, "current"))) return locateVmRuntime(dir);
  const root = mkdtempSync(join(tmpdir(), "openshell-boot-bench-rt-"));
  process.on("exit", () => rmSync(root, { recursive: true, force: true }));
  symlinkSync(dir, join(root, "current"));
  return locateVmRuntime(root);
}

function imageSize(rt: VmRuntime): string {
  const mib = (file: string) => ((statSync(file).blocks * 512) / 2 ** 20).toFixed(0);
  return `rootfs.qcow2 ${mib(rt.baseDisk)} MiB on disk, initrd ${(statSync(rt.initrd).size / 2 ** 10) | 0} KiB`;
}

const baselineDir = values["baseline-runtime"];
const asTheDriverBoots = (name: string, rt: VmRuntime): Variant => ({
  name,
  runtime: rt,
  kernel: rt.kernel,
  cmdline: (line) => line,
});
const variants: Variant[] = baselineDir
  ? [
      asTheDriverBoots("baseline runtime", runtimeAt(baselineDir)),
      asTheDriverBoots("current runtime", runtime),
    ]
  : [
      {
        name: "baseline (vmlinuz, crypto self-tests)",
        runtime,
        kernel: join(runtime.dir, "vmlinuz"),
        cmdline: (line) => line.replace(" cryptomgr.notests=1", ""),
      },
      asTheDriverBoots("driver (as the driver boots)", runtime),
    ];

async function bootOnce(variant: Variant): Promise<{ ready: number; listen: number }> {
  const dir = mkdtempSync(join(tmpdir(), "openshell-boot-bench-"));
  try {
    const disk = join(dir, "disk.qcow2");
    await createOverlay(variant.runtime.baseDisk, disk);
    const envFile = join(dir, "env");
    writeFileSync(
      envFile,
      [
        "OPENSHELL_SANDBOX_ID=boot-bench",
        "OPENSHELL_SANDBOX=boot-bench",
        "OPENSHELL_ENDPOINT=http://host.openshell.internal:1",
        "OPENSHELL_SUPERVISOR_TOKEN=boot-bench",
        "OPENSHELL_SSH_SOCKET_PATH=/run/openshell/ssh.sock",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const consoleLog = join(dir, "console.log");
    writeFileSync(consoleLog, "");
    const args = qemuArgs({
      qemuBinary: "qemu-system-x86_64",
      accelerator: "tcg",
      vcpus: 2,
      memMib: 1024,
      kernel: variant.kernel,
      initrd: variant.runtime.initrd,
      disk,
      envFile,
      consoleLog,
      pidFile: join(dir, "qemu.pid"),
      qmpSocket: join(dir, "qmp.sock"),
      tscKhz: hostTscKhz(),
    });
    const append = args.indexOf("-append") + 1;
    args[append] = variant.cmdline(args[append]!);
    const started = performance.now();
    const qemu = spawn("qemu-system-x86_64", args, { stdio: "ignore" });
    try {
      let ready = 0;
      for (;;) {
        await new Promise((r) => setTimeout(r, 20));
        const text = readFileSync(consoleLog, "latin1");
        if (!ready && text.includes("OPENSHELL-VM-INIT ready")) ready = performance.now() - started;
        if (text.includes("SSH:LISTEN")) return { ready, listen: performance.now() - started };
        if (qemu.exitCode !== null) throw new Error(`QEMU exited early:\n${text.slice(-2000)}`);
        if (performance.now() - started > 120_000)
          throw new Error(`no SSH:LISTEN in 120 s:\n${text.slice(-2000)}`);
      }
    } finally {
      qemu.kill("SIGKILL");
      await new Promise((r) =>
        qemu.exitCode === null && qemu.signalCode === null ? qemu.once("exit", r) : r(null),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`# boot-bench  runtime ${runtime.dir}  TCG, 2 vCPUs, 1024 MiB, ${RUNS} interleaved runs each`);
for (const variant of variants)
  console.log(`# ${variant.name}: ${variant.runtime.dir} (${imageSize(variant.runtime)})`);
const results = variants.map(() => ({ ready: [] as number[], listen: [] as number[] }));
for (let i = 0; i < RUNS; i++) {
  for (const [index, variant] of variants.entries()) {
    const { ready, listen } = await bootOnce(variant);
    results[index]!.ready.push(ready);
    results[index]!.listen.push(listen);
  }
}
for (const [index, variant] of variants.entries()) {
  const r = results[index]!;
  console.log(
    `${variant.name.padEnd(40)} launch → ready ${fmt(r.ready)}   launch → SSH:LISTEN ${fmt(r.listen)}`,
  );
}
const [base, driver] = results;
console.log(
  `ratio ${baselineDir ? "current/baseline" : "driver/baseline"}: ready ${(median(driver!.ready) / median(base!.ready)).toFixed(2)}, SSH:LISTEN ${(median(driver!.listen) / median(base!.listen)).toFixed(2)}`,
);
