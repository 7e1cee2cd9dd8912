import { type ChildProcess, spawn } from "node:child_process";
import { statSync } from "node:fs";
import { constants } from "node:os";
import { basename } from "node:path";
import type { Readable } from "node:stream";
import { emitOcsf, type Logger, OpenShellError, SUPERVISOR_EXIT } from "@openshell/core";
import type { ChildConfiner } from "../confinement/child-confiner.js";
import { endedWithSupervisor } from "../process/parent-death-signal.js";
import { buildLoginEnvironment } from "../ssh/login-environment.js";
import type { RunAsUser } from "../ssh/run-as-user.js";
import { signalProcessTree } from "../ssh/signals.js";

/** Longest workload output line logged (the rest is cut; a line without end is logged in pieces). */
const MAX_WORKLOAD_LINE = 4096;
const MAX_LOGGED_COMMAND = 256;
/** After SIGTERM (a stop, a timeout), before SIGKILL. */
const WORKLOAD_STOP_GRACE_MS = 5_000;

export interface WorkloadOptions {
  /** The program and its arguments (non-empty). */
  command: string[];
  workdir: string;
  /** The identity when there is no confiner (test-only); the login environment's user either way. */
  user: RunAsUser;
  /** Whether to switch to `user` without a confiner (false when already running as them). */
  switchUser: boolean;
  /** Variables on top of the login environment (proxy, CA, sandbox name), as for SSH children. */
  env: Readonly<Record<string, string>>;
  /** Starts the workload through the native launcher; undefined only with --test-only-no-isolation. */
  confiner: ChildConfiner | undefined;
  /** 0: no limit. */
  timeoutSecs: number;
  /** The workload reads the supervisor's stdin (else /dev/null). */
  interactive: boolean;
  logger: Logger;
}

/** How the workload ended and the exit code the supervisor passes on. */
export interface WorkloadExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The supervisor's exit code: the workload's, 128+n for signal n, 124 after the timeout. */
  exitCode: number;
}

/**
 * The sandbox's entrypoint workload (§3.3 steps 14 and 16): started through the same confinement as
 * SSH children (native launcher: netns, user, Landlock, seccomp, rlimits; the login environment with
 * the proxy and CA variables), in its own process group. Its output becomes log lines (one per line,
 * cut at MAX_WORKLOAD_LINE), its start and end OCSF PROC events.
 */
export class WorkloadProcess {
  readonly exited: Promise<WorkloadExit>;
  private timedOut = false;
  private timeout: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    private readonly options: WorkloadOptions,
    private readonly fields: Record<string, unknown>,
  ) {
    // Once it is gone, whatever it left behind in its group goes too (a straggler would also hold
    // its output pipes open, and `close` waits for them).
    child.once("exit", () => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // The group is gone.
      }
    });
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("close", (code, signal) => resolve({ code, signal })),
    );
    if (child.stdout) logLines(child.stdout, "stdout", options.logger, pid);
    if (child.stderr) logLines(child.stderr, "stderr", options.logger, pid);
    if (options.timeoutSecs > 0) {
      this.timeout = setTimeout(() => {
        this.timedOut = true;
        this.terminate();
      }, options.timeoutSecs * 1000);
    }
    this.exited = done.then(({ code, signal }) => this.report(code, signal));
  }

  /** Spawns the workload (confined unless the supervisor runs test-only); throws when it cannot. */
  static async start(options: WorkloadOptions): Promise<WorkloadProcess> {
    const [program, ...args] = options.command;
    if (!program) throw new OpenShellError("invalid_argument", "the workload command is empty");
    const cwd = workingDirectory(options.workdir, options.logger);
    const env = buildLoginEnvironment({
      user: options.user,
      term: undefined,
      extra: options.env,
      requested: {},
    });
    const target = options.confiner
      ? { ...(await options.confiner.wrap(program, args, cwd)), uid: undefined, gid: undefined }
      : {
          // Test-only (no launcher): the launcher's PR_SET_PDEATHSIG is what ends a workload whose
          // supervisor was killed; without it a test that SIGKILLs its supervisor would leave the
          // workload running on the host.
          ...endedWithSupervisor(program, args),
          uid: options.switchUser ? options.user.uid : undefined,
          gid: options.switchUser ? options.user.gid : undefined,
        };
    const child = spawn(target.file, target.args, {
      cwd,
      env,
      uid: target.uid,
      gid: target.gid,
      detached: true, // its own process group: a stop reaches whatever it started
      stdio: [options.interactive ? "inherit" : "ignore", "pipe", "pipe"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", reject);
      });
    } catch (error) {
      child.stdout?.destroy();
      child.stderr?.destroy();
      throw new OpenShellError(
        "failed_precondition",
        `cannot start the workload ${program}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    child.on("error", () => {});
    const pid = child.pid as number;
    const command = options.command.join(" ").slice(0, MAX_LOGGED_COMMAND);
    const fields = {
      workload: true,
      pid,
      command,
      user: options.user.name,
      workdir: cwd,
      confined: options.confiner !== undefined,
      timeout_secs: options.timeoutSecs,
    };
    emitOcsf(options.logger, {
      class: "PROC",
      activity: "LAUNCH",
      message: `workload ${basename(program)}(${pid}) [cmd:${command}]`,
      fields,
    });
    return new WorkloadProcess(child, pid, options, fields);
  }

  private get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM to the workload's process group, SIGKILL after the grace period; see `exited`. */
  terminate(graceMs = WORKLOAD_STOP_GRACE_MS): Promise<WorkloadExit> {
    if (this.running && !this.killTimer && signalProcessTree(this.pid, "SIGTERM")) {
      this.killTimer = setTimeout(() => {
        if (this.running) signalProcessTree(this.pid, "SIGKILL");
      }, graceMs);
    }
    return this.exited;
  }

  private report(code: number | null, signal: NodeJS.Signals | null): WorkloadExit {
    clearTimeout(this.timeout);
    clearTimeout(this.killTimer);
    const { logger } = this.options;
    const name = basename(this.options.command[0] ?? "");
    const exitCode = this.timedOut
      ? SUPERVISOR_EXIT.workloadTimeout
      : signal
        ? 128 + (constants.signals[signal] ?? 0)
        : (code ?? 1);
    const fields = { ...this.fields, exit_code: code, signal, timed_out: this.timedOut };
    const ended = signal ? `signal:${signal}` : `exit:${code}`;
    if (this.timedOut) {
      emitOcsf(logger, {
        class: "PROC",
        activity: "TERMINATE",
        severity: "MEDIUM",
        message: `workload ${name}(${this.pid}) killed after its ${this.options.timeoutSecs} s timeout [${ended}]`,
        fields,
      });
    } else {
      emitOcsf(logger, {
        class: "PROC",
        activity: "TERMINATE",
        message: `workload ${name}(${this.pid}) [${ended}]`,
        fields,
      });
    }
    return { code, signal, timedOut: this.timedOut, exitCode };
  }
}

/** Like the SSH server with a missing home: start in / rather than fail, and say so. */
function workingDirectory(workdir: string, logger: Logger): string {
  try {
    if (statSync(workdir).isDirectory()) return workdir;
  } catch {
    // Reported below.
  }
  logger.warn({ workdir }, "workload workdir missing; starting in /");
  return "/";
}

/**
 * Logs each line of a workload stream (sandbox output: the JSON log keeps control characters
 * escaped, and the CLI shows them as escapes). Lines are cut at MAX_WORKLOAD_LINE characters; a
 * run of output without a line end is logged once it reaches that length.
 */
function logLines(stream: Readable, name: "stdout" | "stderr", logger: Logger, pid: number): void {
  let partial = "";
  const log = (line: string) => {
    const cut = line.length > MAX_WORKLOAD_LINE;
    logger.info(
      { workload_stream: name, pid, ...(cut ? { truncated: true } : {}) },
      cut ? line.slice(0, MAX_WORKLOAD_LINE) : line,
    );
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) log(line.endsWith("\r") ? line.slice(0, -1) : line);
    while (partial.length >= MAX_WORKLOAD_LINE) {
      log(partial.slice(0, MAX_WORKLOAD_LINE));
      partial = partial.slice(MAX_WORKLOAD_LINE);
    }
  });
  stream.on("end", () => {
    if (partial) log(partial);
    partial = "";
  });
  stream.on("error", () => {});
}
