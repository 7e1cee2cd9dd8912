import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { OpenShellError } from "@openshell/core";

/** The staged guest: kernel, initramfs and the base disk every sandbox overlays. */
export interface VmRuntime {
  dir: string;
  kernel: string;
  initrd: string;
  baseDisk: string;
  manifest: Record<string, unknown>;
}

/**
 * The staging script of this driver's own package (src/ and dist/ are both one level below it):
 * a checkout's packages/driver-vm/runtime, or the installed @openshell/driver-vm package's.
 */
const STAGE_COMMAND = `bash ${fileURLToPath(new URL("../runtime/stage-vm-runtime.sh", import.meta.url))}`;

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
      `VM runtime not staged at ${root} (no current/manifest.json); run '${STAGE_COMMAND}' (openshell gateway start and bash scripts/setup.sh do it) or set OPENSHELL_VM_RUNTIME_DIR`,
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

/** How often pinning starts over when a concurrent staging run pruned the runtime under it. */
const PIN_ATTEMPTS = 3;

/**
 * Locates the staged runtime and pins it: its files are hard-linked (copied across filesystems)
 * into `<stateDir>/runtime/<key>/`, and the driver boots only from there. Another clone's set-up
 * may stage a new runtime and prune this one while the driver runs (QEMU opens the kernel and
 * initramfs at every boot); the driver's own links keep them. Other pinned keys are removed: a
 * running VM needs neither file after its launch, and sandbox disks point at their base image in
 * `<stateDir>/images/` (base-images.ts), never here.
 */
export function pinVmRuntime(root: string, stateDir: string): VmRuntime {
  const pinRoot = join(stateDir, "runtime");
  for (let attempt = 1; ; attempt++) {
    const staged = locateVmRuntime(root);
    try {
      const pinned = pinInto(staged, pinRoot);
      removeOtherPins(pinRoot, basename(pinned.dir));
      return pinned;
    } catch (error) {
      // Pruned between locating and linking it: `current` already names a newer complete runtime.
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && attempt < PIN_ATTEMPTS) continue;
      throw OpenShellError.from(error);
    }
  }
}

function pinInto(staged: VmRuntime, pinRoot: string): VmRuntime {
  const key = runtimeKey(staged);
  const dir = join(pinRoot, key);
  const files = [staged.kernel, staged.initrd, staged.baseDisk].map((file) => basename(file));
  if (!existsSync(join(dir, "manifest.json"))) {
    mkdirSync(pinRoot, { recursive: true, mode: 0o700 });
    const tmp = join(pinRoot, `.pin-${key}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { mode: 0o700 });
    // The manifest last: its presence means the pin is complete (as in the staged runtime).
    for (const name of [...files, "manifest.json"]) linkOrCopy(join(staged.dir, name), join(tmp, name));
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  const [kernel, initrd, baseDisk] = files.map((name) => join(dir, name)) as [string, string, string];
  return { dir, kernel, initrd, baseDisk, manifest: staged.manifest };
}

function linkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EXDEV" && code !== "EPERM") throw error;
    copyFileSync(from, to);
  }
}

function removeOtherPins(pinRoot: string, keep: string): void {
  for (const name of readdirSync(pinRoot)) {
    if (name !== keep) rmSync(join(pinRoot, name), { recursive: true, force: true });
  }
}

/** The runtime's content key (stage-vm-runtime.sh names its directory after it). */
export function runtimeKey(runtime: VmRuntime): string {
  const key = runtime.manifest.key;
  return typeof key === "string" && /^[0-9a-f]{16}$/.test(key) ? key : basename(runtime.dir);
}
