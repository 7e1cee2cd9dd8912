import { constants } from "node:os";
import type { ProcessExit } from "./session-process.js";

/** The signal names RFC 4254 defines for `signal` and `exit-signal` (without the SIG prefix). */
const SSH_SIGNALS = new Set([
  "ABRT",
  "ALRM",
  "FPE",
  "HUP",
  "ILL",
  "INT",
  "KILL",
  "PIPE",
  "QUIT",
  "SEGV",
  "TERM",
  "USR1",
  "USR2",
]);

/** Maps the name in a client's `signal` request (e.g. "TERM" or "SIGTERM") to a Node signal. */
export function toNodeSignal(sshName: string): NodeJS.Signals | undefined {
  const bare = sshName.toUpperCase().replace(/^SIG/, "");
  return SSH_SIGNALS.has(bare) ? (`SIG${bare}` as NodeJS.Signals) : undefined;
}

/**
 * How a child ended, as the SSH exit request to send. Signals SSH has no name for (e.g. SIGBUS)
 * become exit status 128+n, as a shell would report them.
 */
export function toProcessExit(code: number | null, signal: NodeJS.Signals | number | null): ProcessExit {
  if (signal === null || signal === 0) return { code: code ?? 0 };
  const name = typeof signal === "string" ? signal : signalName(signal);
  const bare = name?.replace(/^SIG/, "");
  if (bare && SSH_SIGNALS.has(bare)) return { signal: bare };
  const number = typeof signal === "number" ? signal : (constants.signals[signal] ?? 0);
  return { code: 128 + number };
}

function signalName(signal: number): string | undefined {
  return Object.entries(constants.signals).find(([, value]) => value === signal)?.[0];
}

/** Sends `signal` to the process group led by `pid` (the session's children too), else to `pid`. */
export function signalProcessTree(pid: number, signal: NodeJS.Signals): boolean {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return true;
    } catch {
      // ESRCH: no such group (the child is not a group leader) or the process is gone.
    }
  }
  return false;
}

/**
 * SIGHUP to the session's process group (what a hang-up does to a login session), then SIGKILL to
 * whatever of the group is left once the grace period is over.
 */
export function hangUpProcessTree(pid: number, graceMs: number): void {
  if (!signalProcessTree(pid, "SIGHUP")) return;
  const timer = setTimeout(() => {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // The whole group is gone.
    }
  }, graceMs);
  timer.unref();
}
