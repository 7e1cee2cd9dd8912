import { readFileSync } from "node:fs";
import { isAlive } from "@openshell/core";

/**
 * The argv of a live process, or undefined. Callers check it before signalling a pid they read
 * from a file: a recycled pid must never be mistaken for (and signalled as) one of ours.
 */
export function liveCommandLine(pid: number): string[] | undefined {
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return undefined;
  }
}
