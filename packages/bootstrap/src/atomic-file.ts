import { randomBytes } from "node:crypto";
import { chmodSync, renameSync, rmSync, writeFileSync } from "node:fs";

/**
 * Replaces `path` whole: a fresh temp file beside it (exclusive create, exact mode whatever the
 * umask), then one rename. Hand-written rather than `write-file-atomic`: that package reads the
 * CommonJS `__filename`, which the ESM single-file bundles of the binaries do not define.
 */
export function writeFileAtomic(path: string, content: string, mode: number): void {
  const tempPath = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    writeFileSync(tempPath, content, { mode, flag: "wx" });
    chmodSync(tempPath, mode);
    renameSync(tempPath, path);
  } catch (error) {
    rmSync(tempPath, { force: true });
    throw error;
  }
}
