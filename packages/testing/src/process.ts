import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";

/** The one `isAlive` (zombies count as gone), re-exported for the tests beside the other process helpers. */
export { isAlive } from "@openshell/core";

/** The repository root, found upwards from this file (also when bundled into bench/.build). */
export function findRepoRoot(from: string = import.meta.dirname): string {
  let dir = from;
  while (!existsSync(join(dir, "pnpm-workspace.yaml"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no pnpm-workspace.yaml above ${from}`);
    dir = parent;
  }
  return dir;
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Sends `signal` to `child` (unless it has exited) and resolves with its exit code/signal. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolveExit({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once("exit", (code, sig) => resolveExit({ code, signal: sig }));
    child.kill(signal);
  });
}

/**
 * Polls `condition` every 50 ms until it holds; fails with `message` after `timeoutMs`, or at once
 * when `child` exits first.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: string | (() => string),
  child?: ChildProcess,
): Promise<void> {
  const describe = typeof message === "string" ? () => message : message;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    if (child && child.exitCode !== null)
      throw new Error(`process exited (${child.exitCode}): ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(describe());
}

/** Processes with an argument matching `program` and one mentioning `text` (e.g. a test's state dir). */
export function pidsOf(program: RegExp, text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv.some((arg) => program.test(arg)) && argv.some((arg) => arg.includes(text))) {
        pids.push(Number(entry));
      }
    } catch {
      // gone
    }
  }
  return pids;
}
