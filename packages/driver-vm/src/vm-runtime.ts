import { existsSync, readFileSync, realpathSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";

/** The staged guest: kernel, initramfs and the base disk every sandbox overlays. */
export interface VmRuntime {
  dir: string;
  kernel: string;
  initrd: string;
  baseDisk: string;
  manifest: Record<string, unknown>;
}

export const STAGE_COMMAND = "bash packages/driver-vm/runtime/stage-vm-runtime.sh";

export function defaultRuntimeRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OPENSHELL_VM_RUNTIME_DIR) return env.OPENSHELL_VM_RUNTIME_DIR;
  const dataHome = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(dataHome, "openshell", "vm-runtime");
}

/** Finds the newest complete runtime (`<root>/current`); the error names the staging command. */
export function locateVmRuntime(root: string = defaultRuntimeRoot()): VmRuntime {
  const current = join(root, "current");
  const manifestPath = join(current, "manifest.json");
  if (!existsSync(manifestPath)) {
    throw new OpenShellError(
      "failed_precondition",
      `VM runtime not staged at ${root} (no current/manifest.json); run '${STAGE_COMMAND}' (bash scripts/setup.sh does it) or set OPENSHELL_VM_RUNTIME_DIR`,
    );
  }
  const dir = realpathSync(current);
  const runtime: VmRuntime = {
    dir,
    // The uncompressed kernel boots through its PVH entry, skipping decompression (~0.3 s under TCG).
    kernel: existsSync(join(dir, "vmlinux")) ? join(dir, "vmlinux") : join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    baseDisk: join(dir, "rootfs.qcow2"),
    manifest: JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Record<string, unknown>,
  };
  for (const file of [runtime.kernel, runtime.initrd, runtime.baseDisk]) {
    if (!existsSync(file)) {
      throw new OpenShellError(
        "failed_precondition",
        `VM runtime at ${dir} is incomplete (${file} missing); run '${STAGE_COMMAND}' again`,
      );
    }
  }
  return runtime;
}
