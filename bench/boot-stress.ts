// Boot-hang hunter: boots N throw-away VMs with the driver's exact QEMU command line (balloon,
// control channel, TSC hint), P at a time, and keeps everything about any guest that does not print
// the init's "ready" within the deadline: its console, and each vCPU's registers (HMP `info
// registers -a` over QMP) so the instruction pointers can be looked up in the kernel's symbols.
// Usage: bash bench/run.sh boot-stress.ts [--boots 40] [--parallel 3] [--deadline 60] [--keep DIR]
//   [--append "extra kernel args"]
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { hostTscKhz } from "@openshell/driver-vm/host-tsc";
import { qemuArgs } from "@openshell/driver-vm/qemu-command";
import { locateVmRuntime } from "@openshell/driver-vm/vm-runtime";
import { createOverlay } from "./vm-overlay.js";

const { values } = parseArgs({
  options: {
    boots: { type: "string", default: "40" },
    parallel: { type: "string", default: "3" },
    deadline: { type: "string", default: "60" },
    keep: { type: "string", default: join(tmpdir(), "openshell-boot-stress") },
    append: { type: "string", default: "" },
  },
});
const BOOTS = Number(values.boots);
const PARALLEL = Number(values.parallel);
const DEADLINE_MS = Number(values.deadline) * 1000;
const runtime = locateVmRuntime();
const tscKhz = hostTscKhz();
mkdirSync(values.keep, { recursive: true });

/** Sends HMP commands over QMP and returns their outputs. */
async function hmp(socket: string, commands: string[]): Promise<string[]> {
  const conn = createConnection(socket);
  let buffer = "";
  const replies: unknown[] = [];
  conn.on("data", (chunk) => {
    buffer += chunk.toString();
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = JSON.parse(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      if ("return" in line || "error" in line) replies.push(line);
    }
  });
  const send = (o: object) => conn.write(`${JSON.stringify(o)}\n`);
  const next = async (n: number) => {
    for (let i = 0; i < 100 && replies.length < n; i++) await new Promise((r) => setTimeout(r, 50));
  };
  await new Promise((r) => conn.once("connect", r));
  send({ execute: "qmp_capabilities" });
  await next(1);
  for (const [i, command] of commands.entries()) {
    send({ execute: "human-monitor-command", arguments: { "command-line": command } });
    await next(i + 2);
  }
  conn.destroy();
  return replies.slice(1).map((r) => JSON.stringify(r));
}

async function bootOnce(n: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "openshell-boot-stress-"));
  const disk = join(dir, "disk.qcow2");
  await createOverlay(runtime.baseDisk, disk);
  const envFile = join(dir, "env");
  writeFileSync(
    envFile,
    "OPENSHELL_SANDBOX_ID=stress\nOPENSHELL_ENDPOINT=http://host.openshell.internal:1\n",
    {
      mode: 0o600,
    },
  );
  const consoleLog = join(dir, "console.log");
  writeFileSync(consoleLog, "");
  const control = join(dir, "control");
  for (const fifo of [`${control}.in`, `${control}.out`])
    await promisify(execFile)("mkfifo", ["-m", "0600", fifo]);
  const qmpSocket = join(dir, "qmp.sock");
  const args = qemuArgs({
    qemuBinary: "qemu-system-x86_64",
    accelerator: "tcg",
    vcpus: 2,
    memMib: 512,
    kernel: runtime.kernel,
    initrd: runtime.initrd,
    disk,
    envFile,
    consoleLog,
    pidFile: join(dir, "qemu.pid"),
    qmpSocket,
    controlPipe: control,
    tscKhz,
  });
  if (values.append) {
    const append = args.indexOf("-append") + 1;
    args[append] = `${args[append]} ${values.append}`;
  }
  const started = performance.now();
  const qemu = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  qemu.stderr.on("data", (c) => (stderr += c));
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const text = readFileSync(consoleLog, "latin1");
      if (text.includes("OPENSHELL-VM-INIT ready"))
        return `boot ${n} ready ${((performance.now() - started) / 1000).toFixed(1)} s`;
      if (qemu.exitCode !== null) throw new Error(`QEMU exited: ${stderr}\n${text}`);
      if (performance.now() - started > DEADLINE_MS) {
        const dump = await hmp(qmpSocket, [
          "info registers -a",
          "info cpus",
          "x/40gx $rsp",
          "info irq",
        ]).catch((e: Error) => [`hmp failed: ${e.message}`]);
        const keep = join(values.keep, `hang-${process.pid}-${n}`);
        mkdirSync(keep, { recursive: true });
        writeFileSync(join(keep, "console.log"), text);
        writeFileSync(join(keep, "registers.txt"), dump.join("\n\n").replaceAll("\\r\\n", "\n"));
        writeFileSync(join(keep, "cmdline.txt"), args.join(" "));
        return `boot ${n} HUNG (no ready in ${DEADLINE_MS / 1000} s): kept in ${keep}`;
      }
    }
  } finally {
    qemu.kill("SIGKILL");
    await new Promise((r) =>
      qemu.exitCode === null && qemu.signalCode === null ? qemu.once("exit", r) : r(null),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

let next = 0;
let hung = 0;
await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    while (next < BOOTS) {
      const line = await bootOnce(next++);
      if (line.includes("HUNG")) hung++;
      console.log(line);
    }
  }),
);
console.log(`# ${BOOTS} boots, ${PARALLEL} at a time: ${hung} hung`);
