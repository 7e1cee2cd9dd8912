import { chmodSync, closeSync, constants, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { type Logger, OpenShellError } from "@openshell/core";

const PRIVATE_MODE = 0o600;
/** SQLite's companions of a WAL-mode database; it creates them with the database file's mode. */
const COMPANION_SUFFIXES = ["-wal", "-shm"] as const;

/**
 * The database holds the supervisor-credential signing key and SSH session tokens: it and its
 * WAL/SHM files are readable by the gateway's user only. A missing database file is created 0600
 * before SQLite opens it (SQLite then gives the WAL and SHM files the same mode); existing files
 * with looser modes (written by an older gateway) are tightened, with a log line.
 */
export function ensurePrivateDatabaseFiles(path: string, logger: Logger): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, PRIVATE_MODE));
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EEXIST") {
      throw new OpenShellError(
        "unavailable",
        `cannot create the SQLite database '${path}': ${(error as Error).message}. Check that the directory exists and is writable.`,
        { cause: error },
      );
    }
  }
  for (const file of [path, ...COMPANION_SUFFIXES.map((suffix) => `${path}${suffix}`)]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue; // a companion that does not exist (yet)
    }
    if ((mode & ~PRIVATE_MODE) === 0) continue;
    const fields = { file, mode: mode.toString(8), wanted: PRIVATE_MODE.toString(8) };
    try {
      chmodSync(file, PRIVATE_MODE);
      logger.warn(fields, "database file was readable by other users; restricted it to the gateway's user");
    } catch (error) {
      logger.warn(
        { ...fields, err: (error as Error).message },
        "database file is readable by other users and cannot be restricted; chmod 600 it as its owner",
      );
    }
  }
}
