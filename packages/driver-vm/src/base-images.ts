import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
} from "node:fs";
import { join } from "node:path";
import { runtimeKey, type VmRuntime } from "./vm-runtime.js";

/**
 * The driver's own reference to each base disk its sandboxes overlay. Sandbox disks are qcow2
 * overlays that point at their base by path, and re-staging the runtime replaces the staged base;
 * a hard link (or a copy across filesystems) in the driver's state keeps every sandbox bootable.
 */
export class BaseImages {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "images");
  }

  /** The path sandboxes created now should use as their backing file. */
  ensure(runtime: VmRuntime): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const key = runtimeKey(runtime);
    const path = join(this.dir, `${key}.qcow2`);
    if (existsSync(path)) return path;
    const tmp = `${path}.tmp`;
    rmSync(tmp, { force: true });
    try {
      linkSync(runtime.baseDisk, tmp);
    } catch {
      copyFileSync(runtime.baseDisk, tmp);
    }
    chmodSync(tmp, 0o444);
    renameSync(tmp, path);
    return path;
  }

  /** Removes base images no sandbox uses any more (`inUse` holds backing paths). */
  prune(inUse: Set<string>, keep: string): void {
    if (!existsSync(this.dir)) return;
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (path !== keep && !inUse.has(path)) rmSync(path, { force: true });
    }
  }
}
