import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { MemorySnapshot, type SnapshotFingerprint, type SnapshotMeta } from "./memory-snapshot.js";

/** A complete template: its frozen disk (new sandboxes overlay it) and its memory snapshot. */
export interface VmTemplate {
  dir: string;
  disk: string;
  snapshot: MemorySnapshot;
  meta: SnapshotMeta;
}

/**
 * The driver's templates: per VM shape (fingerprint: runtime, QEMU, accelerator, memory, vCPUs,
 * balloon) a guest booted up to the point where it waits for its identity, saved once
 * (`<state>/templates/<key>-<made ms>/`: `disk.qcow2`, `memory.snap`, `snapshot.json`, its console).
 * A new key (another runtime, say) simply has no template yet. A template's disk is the backing
 * file of every sandbox made from it, so a directory is only removed when no sandbox's disk
 * points into it; an unusable template loses its snapshot (never its disk) and a new one is made
 * in a new directory.
 */
export class VmTemplates {
  /** Builds in progress, by key: one at a time per key. */
  private readonly building = new Map<string, Promise<void>>();
  private readonly buildingDirs = new Set<string>();

  constructor(private readonly dir: string) {}

  static key(fingerprint: SnapshotFingerprint, extra: Record<string, unknown>): string {
    return createHash("sha256").update(JSON.stringify({ fingerprint, extra })).digest("hex").slice(0, 16);
  }

  /** The newest complete template for `key` whose record matches `fingerprint`. */
  current(key: string, fingerprint: SnapshotFingerprint): VmTemplate | undefined {
    for (const name of this.dirsOf(key).reverse()) {
      const dir = join(this.dir, name);
      const snapshot = new MemorySnapshot(dir);
      const check = snapshot.check(fingerprint);
      if (check.usable && existsSync(join(dir, "disk.qcow2")))
        return { dir, disk: join(dir, "disk.qcow2"), snapshot, meta: check.meta };
    }
    return undefined;
  }

  isBuilding(key: string): boolean {
    return this.building.has(key);
  }

  /**
   * Runs `make(dir)` for a new template directory of `key` in the background unless one is being
   * made; a failed build leaves no snapshot (and its directory goes at the next prune).
   */
  build(key: string, make: (dir: string) => Promise<void>, onError: (error: unknown) => void): void {
    if (this.building.has(key)) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const dir = join(this.dir, `${key}-${Date.now()}`);
    this.buildingDirs.add(dir);
    const running = make(dir)
      .catch((error: unknown) => {
        new MemorySnapshot(dir).remove();
        onError(error);
      })
      .finally(() => {
        this.building.delete(key);
        this.buildingDirs.delete(dir);
      });
    this.building.set(key, running);
  }

  /** Waits for builds in progress (shutdown). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.building.values());
  }

  /**
   * Removes template directories that are neither `current` for their key nor any sandbox's
   * backing (`inUse`: backing file paths); returns the backing files of those kept (their base images).
   */
  prune(inUse: Set<string>, currentDirs: Set<string>): Set<string> {
    const kept = new Set<string>();
    if (!existsSync(this.dir)) return kept;
    for (const name of readdirSync(this.dir)) {
      const dir = join(this.dir, name);
      const disk = join(dir, "disk.qcow2");
      if (!currentDirs.has(dir) && !inUse.has(disk) && !this.buildingDirs.has(dir)) {
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      try {
        kept.add(readFileSync(join(dir, "backing"), "utf8").trim());
      } catch {
        // no backing record
      }
    }
    return kept;
  }

  private dirsOf(key: string): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((name) => name.startsWith(`${key}-`))
      .sort((a, b) => Number(a.slice(key.length + 1)) - Number(b.slice(key.length + 1)));
  }
}
