import { createHash } from "node:crypto";
import { type BigIntStats, closeSync, fstatSync, openSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

/** What identifies a file's content without reading it: a write changes ctime, a replacement the inode. */
interface Fingerprint {
  key: string;
}

interface Baseline {
  key: string;
  /** The content's SHA-256 at first use, hashed in the background; rejects when it could not be. */
  hash: Promise<string>;
}

/**
 * Trust on first use of each binary path (§3.8): the content a path had when it first opened a
 * connection is the content it must keep.
 *
 * The first connection of a path is not held up by hashing (the proxy's node binary is 127 MB: ~25 s
 * under TCG): its fingerprint (device, inode, size, mtime, ctime of the file `/proc/<pid>/exe`
 * names) is recorded at once and the SHA-256 of the same open file computed in the background.
 * Later connections with the same fingerprint are the same content (ctime cannot be set from user
 * space and moves with every write; a replaced file has another inode). A different fingerprint is
 * hashed while that connection waits and compared with the first use's hash; if the file changed
 * while its first-use hash was computed, the first-use content is unknown and a changed binary is
 * refused.
 */
export class BinaryTrustCache {
  private readonly baselines = new Map<string, Baseline>();

  /** The SHA-256 a path had at its first use, once computed (rejects when it could not be known). */
  firstUseHash(path: string): Promise<string> | undefined {
    return this.baselines.get(path)?.hash;
  }

  /**
   * `undefined`: trusted; otherwise why not. A path seen before with the same fingerprint (every
   * connection but a binary's first) is answered synchronously: open and fstat of `/proc/<pid>/exe`
   * are microseconds, while the awaited open, stat and close are three threadpool round trips on
   * every new connection's path.
   */
  async check(pid: number, path: string, procRoot = "/proc"): Promise<string | undefined> {
    const baseline = this.baselines.get(path);
    if (baseline !== undefined && fingerprintNow(`${procRoot}/${pid}/exe`) === baseline.key) return undefined;
    return this.checkSlowly(pid, path, procRoot);
  }

  private async checkSlowly(pid: number, path: string, procRoot: string): Promise<string | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(`${procRoot}/${pid}/exe`, "r");
    } catch (error) {
      return `cannot read the binary of pid ${pid}: ${(error as Error).message}`;
    }
    let ownsHandle = true;
    try {
      const current = await fingerprint(handle);
      const baseline = this.baselines.get(path);
      if (!baseline) {
        ownsHandle = false;
        this.baselines.set(path, { key: current.key, hash: hashInBackground(handle, current) });
        return undefined;
      }
      if (baseline.key === current.key) return undefined;
      let first: string;
      try {
        first = await baseline.hash;
      } catch (error) {
        return `binary '${path}' changed since first use (its first-use content is unknown: ${(error as Error).message})`;
      }
      const now = await sha256(handle);
      if (now !== first)
        return `binary '${path}' changed since first use (sha256 ${first.slice(0, 12)} -> ${now.slice(0, 12)})`;
      // Same content under a new fingerprint (copied or reinstalled): remember the new one.
      this.baselines.set(path, { key: current.key, hash: baseline.hash });
      return undefined;
    } catch (error) {
      return `cannot hash ${path}: ${(error as Error).message}`;
    } finally {
      if (ownsHandle) await handle.close().catch(() => undefined);
    }
  }
}

async function fingerprint(handle: FileHandle): Promise<Fingerprint> {
  return { key: fingerprintKey(await handle.stat({ bigint: true })) };
}

/** The fingerprint of the file `exe` names, read synchronously; undefined when it cannot be opened. */
function fingerprintNow(exe: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(exe, "r");
  } catch {
    return undefined; // the slow path says why
  }
  try {
    return fingerprintKey(fstatSync(fd, { bigint: true }));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function fingerprintKey(info: BigIntStats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

/** The first-use hash; rejects if the file changed while it was read (the content is then unknown). */
function hashInBackground(handle: FileHandle, atFirstUse: Fingerprint): Promise<string> {
  const hash = (async () => {
    try {
      const digest = await sha256(handle);
      if ((await fingerprint(handle)).key !== atFirstUse.key)
        throw new Error("it was modified while its first-use hash was computed");
      return digest;
    } finally {
      await handle.close().catch(() => undefined);
    }
  })();
  // Observed only when a later connection needs it; never an unhandled rejection.
  hash.catch(() => undefined);
  return hash;
}

async function sha256(handle: FileHandle): Promise<string> {
  const hash = createHash("sha256");
  const buffer = Buffer.allocUnsafe(256 * 1024);
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) return hash.digest("hex");
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}
