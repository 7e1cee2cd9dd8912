import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SUPERVISOR_BIN } from "@openshell/testing/sandbox-harness";

/** How long a supervisor that should fail closed may take to exit before it is killed. */
const EXIT_TIMEOUT_MS = 30_000;

/** A scratch directory every user may write (the supervisor may run as `nobody`). */
export function sharedScratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o777);
  return dir;
}

/** One JSON line of the supervisor's log (pino; findings carry their fields). */
interface SupervisorLogLine {
  level: string | number;
  msg: string;
  finding?: string;
}

export interface SupervisorExit {
  /** The exit code; null when it had to be killed after `EXIT_TIMEOUT_MS`. */
  code: number | null;
  /** stdout and stderr together. */
  output: string;
  /** The JSON log lines of `output`. */
  lines: SupervisorLogLine[];
}

/**
 * Runs the real supervisor for sandbox `sandbox`, its files under `dir`, against a gateway endpoint
 * nothing listens on (a fail-closed check must not depend on reaching one), and waits for it to
 * exit. `wrapper` runs it through another program (e.g. `setpriv` to drop privileges); `args`
 * follow the supervisor's path.
 */
export async function runSupervisorUntilExit(options: {
  sandbox: string;
  dir: string;
  args: string[];
  wrapper?: string[];
}): Promise<SupervisorExit> {
  const [command, ...commandArgs] = [...(options.wrapper ?? []), process.execPath, SUPERVISOR_BIN];
  const child = spawn(command as string, [...commandArgs, ...options.args], {
    env: {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      OPENSHELL_SANDBOX_ID: options.sandbox,
      OPENSHELL_SANDBOX: options.sandbox,
      OPENSHELL_ENDPOINT: "http://127.0.0.1:1",
      OPENSHELL_SUPERVISOR_TOKEN: "token",
      OPENSHELL_SSH_SOCKET_PATH: join(options.dir, "run", "ssh.sock"),
      OPENSHELL_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), EXIT_TIMEOUT_MS);
    child.on("close", (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  const lines = output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as SupervisorLogLine);
  return { code, output, lines };
}
