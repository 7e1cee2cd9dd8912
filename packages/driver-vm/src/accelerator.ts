import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync, writeFileSync } from "node:fs";
import type { Accelerator } from "./qemu-command.js";

export interface AcceleratorChoice {
  accelerator: Accelerator;
  /** One sentence for logs and `doctor`. */
  reason: string;
}

const PROBE_TIMEOUT_MS = 5_000;

/**
 * Picks KVM only when it really boots a guest: `/dev/kvm` can exist and still be useless (nested
 * "PVM" hosts run ordinary kernels through an instruction emulator and then fail). The probe boots
 * the runtime's kernel without a root disk under KVM; a real KVM reaches the expected
 * "unable to mount root" panic in well under a second. The answer is cached per host boot.
 */
export async function chooseAccelerator(options: {
  qemuBinary: string;
  kernel: string;
  cacheFile?: string;
  env?: NodeJS.ProcessEnv;
}): Promise<AcceleratorChoice> {
  const forced = (options.env ?? process.env).OPENSHELL_VM_ACCEL;
  if (forced === "tcg" || forced === "kvm") {
    return { accelerator: forced, reason: `OPENSHELL_VM_ACCEL=${forced}` };
  }
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return {
      accelerator: "tcg",
      reason: "no usable /dev/kvm on this host; using TCG, guests run ~10× slower",
    };
  }
  const bootId = readBootId();
  if (options.cacheFile && bootId) {
    try {
      const cached = JSON.parse(readFileSync(options.cacheFile, "utf8")) as AcceleratorChoice & {
        bootId: string;
      };
      if (cached.bootId === bootId) return { accelerator: cached.accelerator, reason: cached.reason };
    } catch {
      // no cache yet
    }
  }
  const choice = await probeKvm(options.qemuBinary, options.kernel);
  if (options.cacheFile && bootId) {
    try {
      writeFileSync(options.cacheFile, JSON.stringify({ ...choice, bootId }));
    } catch {
      // caching is an optimisation
    }
  }
  return choice;
}

function readBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return undefined;
  }
}

function probeKvm(qemuBinary: string, kernel: string): Promise<AcceleratorChoice> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(
      qemuBinary,
      [
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-machine",
        "microvm",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        kernel,
        "-append",
        "console=ttyS0 panic=-1",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    let settled = false;
    const finish = (choice: AcceleratorChoice) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      resolve(choice);
    };
    const onOutput = (chunk: Buffer) => {
      output += chunk.toString();
      if (/Kernel panic|VFS: Unable to mount root|Run \/init/.test(output)) {
        finish({
          accelerator: "kvm",
          reason: `KVM boots a test guest in ${Date.now() - started} ms; using KVM`,
        });
      }
    };
    child.stdout.on("data", onOutput);
    child.stderr.on("data", onOutput);
    child.on("error", (error) =>
      finish({ accelerator: "tcg", reason: `cannot run ${qemuBinary} (${error.message}); using TCG` }),
    );
    child.on("exit", () => {
      const lastLine = output.trim().split("\n").at(-1)?.slice(0, 160) ?? "no output";
      finish({
        accelerator: "tcg",
        reason: `KVM unusable here (test guest exited early: ${lastLine}); using TCG, guests run ~10× slower`,
      });
    });
    const timer = setTimeout(() => {
      finish({
        accelerator: "tcg",
        reason: `KVM unusable here (a test guest did not boot within ${PROBE_TIMEOUT_MS / 1000} s); using TCG, guests run ~10× slower`,
      });
    }, PROBE_TIMEOUT_MS);
  });
}
