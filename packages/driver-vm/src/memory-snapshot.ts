import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

/** Bumped whenever the VM's device set or the snapshot's layout changes. */
export const SNAPSHOT_FORMAT = 1;

/**
 * What a snapshot can only be restored into: QEMU loads a migration stream only into the same
 * machine and devices, and a guest only makes sense on the kernel and root image it booted.
 */
export interface SnapshotFingerprint {
  format: number;
  runtimeKey: string;
  qemuVersion: string;
  accelerator: string;
  memMib: number;
  vcpus: number;
  freePageReporting: boolean;
}

/**
 * Why the snapshot was made: a user's stop (restored by StartSandbox), a clean driver shutdown, or
 * a template (restored by every create, never consumed).
 */
export type SnapshotCause = "stop" | "shutdown" | "template";

export interface SnapshotMeta {
  fingerprint: SnapshotFingerprint;
  bytes: number;
  sha256: string;
  cause: SnapshotCause;
  createdAt: string;
  saveMs: number;
}

export type SnapshotCheck = { usable: true; meta: SnapshotMeta } | { usable: false; reason: string };

/**
 * A sandbox's memory snapshot on disk, beside its overlay: `memory.snap` (QEMU's migration stream,
 * 0600: it holds guest memory), `memory.snap.tmp` while QEMU writes it, and `snapshot.json` (its
 * fingerprint, size and SHA-256), written last. A snapshot is only valid for the overlay exactly as
 * QEMU left it: the driver removes it before the restored guest runs, and before any cold boot.
 */
export class MemorySnapshot {
  constructor(private readonly dir: string) {}

  get file() {
    return join(this.dir, "memory.snap");
  }
  get tmpFile() {
    return join(this.dir, "memory.snap.tmp");
  }
  get metaFile() {
    return join(this.dir, "snapshot.json");
  }

  /** Whether anything of a snapshot is there (complete or not). */
  exists(): boolean {
    return existsSync(this.metaFile) || existsSync(this.file) || existsSync(this.tmpFile);
  }

  /** Size in bytes of a complete snapshot, 0 when there is none. */
  bytes(): number {
    try {
      return statSync(this.file).size;
    } catch {
      return 0;
    }
  }

  /** Records a complete snapshot (after QEMU's writer renamed the file into place). */
  async commit(
    fingerprint: SnapshotFingerprint,
    cause: SnapshotCause,
    saveMs: number,
  ): Promise<SnapshotMeta> {
    const meta: SnapshotMeta = {
      fingerprint,
      bytes: statSync(this.file).size,
      sha256: await sha256File(this.file),
      cause,
      createdAt: new Date().toISOString(),
      saveMs,
    };
    const tmp = `${this.metaFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(meta)}\n`, { mode: 0o600 });
    renameSync(tmp, this.metaFile);
    return meta;
  }

  /**
   * Whether the snapshot can be restored into a VM with `expected`; the reason when not (a
   * missing or unreadable record, a field that differs, a file of the wrong size). The content
   * is checked by `verify` while QEMU loads it.
   */
  check(expected: SnapshotFingerprint): SnapshotCheck {
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse(readFileSync(this.metaFile, "utf8")) as SnapshotMeta;
    } catch {
      return {
        usable: false,
        reason: "its record snapshot.json is missing or unreadable (an interrupted save)",
      };
    }
    const actual = meta.fingerprint ?? ({} as Partial<SnapshotFingerprint>);
    for (const key of Object.keys(expected) as (keyof SnapshotFingerprint)[]) {
      if (actual[key] !== expected[key])
        return {
          usable: false,
          reason: `it was made with ${key} ${JSON.stringify(actual[key])} and this driver runs ${JSON.stringify(expected[key])}`,
        };
    }
    const bytes = this.bytes();
    if (bytes !== meta.bytes)
      return {
        usable: false,
        reason: `its file has ${bytes} bytes instead of ${meta.bytes} (truncated or replaced)`,
      };
    return { usable: true, meta };
  }

  /** Whether the file's SHA-256 is the recorded one (a flipped byte in guest memory goes unnoticed by QEMU). */
  async verify(meta: SnapshotMeta): Promise<boolean> {
    try {
      return (await sha256File(this.file)) === meta.sha256;
    } catch {
      return false;
    }
  }

  remove(): void {
    rmSync(this.metaFile, { force: true });
    rmSync(this.file, { force: true });
    rmSync(this.tmpFile, { force: true });
  }
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file, { highWaterMark: 4 * 2 ** 20 })
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
