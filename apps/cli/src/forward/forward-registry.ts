import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { OpenShellPaths } from "@openshell/bootstrap";
import { liveCommandLine } from "@openshell/bootstrap";

/** A background `sandbox forward -d`, recorded as upstream does: forwards/<sandbox>-<port>.pid. */
export interface ForwardRecord {
  sandbox: string;
  port: number;
  bind: string;
  pid: number;
  alive: boolean;
}

function forwardsDir(paths: OpenShellPaths): string {
  return join(paths.configDir, "forwards");
}

function isOurSsh(pid: number, port: number): boolean {
  const argv = liveCommandLine(pid);
  return Boolean(
    argv?.some((arg) => arg.endsWith("ssh")) &&
      argv.some((arg) => arg.includes(`:${port}:127.0.0.1:${port}`)),
  );
}

export function recordForward(paths: OpenShellPaths, forward: Omit<ForwardRecord, "alive">): void {
  mkdirSync(forwardsDir(paths), { recursive: true, mode: 0o700 });
  writeFileSync(
    join(forwardsDir(paths), `${forward.sandbox}-${forward.port}.pid`),
    `${forward.pid}\n${forward.bind}\n`,
  );
}

export function listForwards(paths: OpenShellPaths): ForwardRecord[] {
  const dir = forwardsDir(paths);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((file) => {
    const match = /^(.+)-(\d+)\.pid$/.exec(file);
    if (!match) return [];
    const [pidText, bind] = readFileSync(join(dir, file), "utf8").split("\n");
    const port = Number(match[2]);
    const pid = Number(pidText);
    return [{ sandbox: match[1] ?? "", port, bind: bind || "127.0.0.1", pid, alive: isOurSsh(pid, port) }];
  });
}

/** Stops a forward (only if the pid is still that ssh) and forgets it. */
export function stopForward(paths: OpenShellPaths, forward: ForwardRecord): void {
  if (isOurSsh(forward.pid, forward.port)) process.kill(forward.pid, "SIGTERM");
  rmSync(join(forwardsDir(paths), `${forward.sandbox}-${forward.port}.pid`), { force: true });
}

/** Deleting a sandbox stops its forwards. */
export function stopForwardsOf(paths: OpenShellPaths, sandbox: string): void {
  for (const forward of listForwards(paths)) if (forward.sandbox === sandbox) stopForward(paths, forward);
}
