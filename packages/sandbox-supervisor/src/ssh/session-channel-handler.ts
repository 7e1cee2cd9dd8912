import { existsSync, statSync } from "node:fs";
import { emitOcsf, OpenShellError } from "@openshell/core";
import type { PseudoTtyInfo, ServerChannel, Session } from "ssh2";
import { isExecutableFile } from "../process/executable-file.js";
import { flushWritable } from "./channel-io.js";
import {
  buildLoginEnvironment,
  execCommandLine,
  isForwardableEnvName,
  NO_LOGIN_SHELL_REQUEST,
  withoutStartupFiles,
} from "./login-environment.js";
import { PipeSessionProcess } from "./pipe-session-process.js";
import { PtySessionProcess } from "./pty-session-process.js";
import type { LaunchSpec, ProcessExit, PtySize, SessionProcess } from "./session-process.js";
import { toNodeSignal } from "./signals.js";
import type { SshServerContext } from "./ssh-context.js";

type Accept = (() => void) | undefined;
type Reject = (() => void) | undefined;

interface PtyRequest extends PtySize {
  term: string;
}

type Launch =
  | { kind: "shell" }
  | { kind: "exec"; command: string }
  | { kind: "subsystem"; name: string; file: string };

const DEFAULT_PTY_TERM = "xterm-256color";
const MAX_LOGGED_COMMAND = 256;

/**
 * One SSH `session` channel: collects pty-req and env requests, then runs exactly one of shell,
 * exec or a subsystem as the sandbox user, and reports how it ended (exit-status or exit-signal,
 * then EOF and close). Closing the channel or the connection hangs up the child.
 */
export class SessionChannelHandler {
  private pty: PtyRequest | undefined;
  private readonly requestedEnv: Record<string, string> = {};
  /** Set by the NO_LOGIN_SHELL_REQUEST env request: exec runs in a plain shell. */
  private noLoginShell = false;
  private process: SessionProcess | undefined;
  private readonly disposed = new AbortController();

  constructor(
    session: Session,
    private readonly context: SshServerContext,
    private readonly connectionId: number,
  ) {
    session.on("pty", (accept: Accept, _reject: Reject, info: PseudoTtyInfo & { term?: string }) => {
      this.pty = { term: info.term || DEFAULT_PTY_TERM, cols: info.cols || 80, rows: info.rows || 24 };
      accept?.();
    });
    session.on("window-change", (accept: Accept, _reject: Reject, info: PtySize) => {
      if (this.pty) this.pty = { ...this.pty, cols: info.cols, rows: info.rows };
      this.process?.resize(info);
      accept?.();
    });
    session.on("env", (accept: Accept, _reject: Reject, info: { key: string; val: string }) => {
      // Acknowledged either way (clients may wait for the reply); only the allowlist is applied.
      if (info.key === NO_LOGIN_SHELL_REQUEST) this.noLoginShell = info.val === "1";
      else if (isForwardableEnvName(info.key)) this.requestedEnv[info.key] = info.val;
      else context.logger.debug({ connection_id: connectionId, name: info.key }, "ssh env request ignored");
      accept?.();
    });
    session.on("signal", (accept: Accept, reject: Reject, info: { name: string }) => {
      const signal = toNodeSignal(info.name);
      if (!signal || !this.process) return reject?.();
      this.process.signal(signal);
      accept?.();
    });
    session.on("shell", (accept: () => ServerChannel | undefined) => {
      void this.run(accept(), { kind: "shell" });
    });
    session.on(
      "exec",
      (accept: () => ServerChannel | undefined, _reject: Reject, info: { command: string }) => {
        void this.run(accept(), { kind: "exec", command: info.command });
      },
    );
    session.on(
      "subsystem",
      (accept: () => ServerChannel | undefined, reject: Reject, info: { name: string }) => {
        if (info.name === "sftp" && context.sftpServerPath) {
          void this.run(accept(), { kind: "subsystem", name: info.name, file: context.sftpServerPath });
          return;
        }
        emitOcsf(context.logger, {
          class: "SSH",
          activity: "REFUSE",
          severity: "MEDIUM",
          disposition: "BLOCKED",
          message: `unsupported subsystem requested: ${info.name}`,
          fields: { connection_id: connectionId, subsystem: info.name },
        });
        reject?.();
      },
    );
    session.on("close", () => void this.dispose());
  }

  /** Hangs up the child (if any); settles once it is gone. */
  dispose(): Promise<void> {
    if (!this.disposed.signal.aborted) {
      this.disposed.abort();
      this.process?.terminate();
    }
    return this.process?.gone ?? Promise.resolve();
  }

  private async run(channel: ServerChannel | undefined, launch: Launch): Promise<void> {
    // ssh2 hands out no channel for a second shell/exec/subsystem on the same session.
    if (!channel) return;
    channel.on("error", (error: Error) => this.fail(`session channel error: ${error.message}`));
    channel.on("close", () => void this.dispose());
    if (this.disposed.signal.aborted) return;

    let child: SessionProcess;
    try {
      const spec = await this.confined(this.launchSpec(launch));
      if (this.disposed.signal.aborted) return;
      child =
        this.pty && launch.kind !== "subsystem"
          ? PtySessionProcess.start(channel, spec, { ...this.pty, setprivPath: this.context.setprivPath })
          : await PipeSessionProcess.start(channel, spec);
    } catch (error) {
      const message = OpenShellError.from(error).message;
      this.fail(`failed to start ${launch.kind}: ${message}`);
      channel.stderr.write(`openshell-sandbox: ${message}\n`);
      await this.finish(channel, { code: 127 });
      return;
    }
    this.process = child;
    if (this.disposed.signal.aborted) child.terminate();

    const command = launch.kind === "exec" ? launch.command.slice(0, MAX_LOGGED_COMMAND) : undefined;
    const fields = {
      connection_id: this.connectionId,
      pid: child.pid,
      kind: launch.kind,
      user: this.context.user.name,
      pty: child instanceof PtySessionProcess,
      confined: this.context.confiner !== undefined,
      ...(command !== undefined ? { command, login_shell: !this.noLoginShell } : {}),
      ...(launch.kind === "subsystem" ? { subsystem: launch.name } : {}),
    };
    emitOcsf(this.context.logger, {
      class: "PROC",
      activity: "LAUNCH",
      message: `${launch.kind} started as ${this.context.user.name} (pid ${child.pid})`,
      fields,
    });
    const exit = await child.exited;
    emitOcsf(this.context.logger, {
      class: "PROC",
      activity: "TERMINATE",
      message:
        exit.signal !== undefined
          ? `${launch.kind} (pid ${child.pid}) killed by SIG${exit.signal}`
          : `${launch.kind} (pid ${child.pid}) exited with code ${exit.code}`,
      fields: { ...fields, exit_code: exit.code ?? null, signal: exit.signal ?? null },
    });
    await this.finish(channel, exit);
  }

  private launchSpec(launch: Launch): LaunchSpec & { program: { file: string; args: string[] } } {
    const { user, workdir, switchUser } = this.context;
    const plain = launch.kind === "exec" && this.noLoginShell;
    const { file, args } =
      launch.kind === "exec"
        ? execCommandLine(user, launch.command, plain, isExecutableFile)
        : launch.kind === "shell"
          ? { file: user.shell, args: ["-l"] }
          : { file: launch.file, args: [] };
    const usesPty = this.pty !== undefined && launch.kind !== "subsystem";
    const env = buildLoginEnvironment({
      user,
      term: usesPty ? this.pty?.term : undefined,
      extra: this.context.env,
      requested: this.requestedEnv,
    });
    return {
      ...withInheritedFdsClosed(file, args),
      program: { file, args },
      cwd: this.workingDirectory(workdir),
      env: plain ? withoutStartupFiles(env) : env,
      uid: switchUser ? user.uid : undefined,
      gid: switchUser ? user.gid : undefined,
    };
  }

  /**
   * The launcher running `spec` confined (it drops to the user itself and closes inherited
   * descriptors, so neither the uid switch nor the bash prelude is needed); `spec` as it is when
   * the server has no confiner.
   */
  private async confined(
    spec: LaunchSpec & { program: { file: string; args: string[] } },
  ): Promise<LaunchSpec> {
    const { program, ...rest } = spec;
    const { confiner } = this.context;
    if (!confiner) return rest;
    const command = await confiner.wrap(program.file, program.args, spec.cwd);
    return { ...rest, ...command, uid: undefined, gid: undefined };
  }

  /** Like sshd with a missing home: start in / rather than fail, and say so in the log. */
  private workingDirectory(workdir: string): string {
    try {
      if (statSync(workdir).isDirectory()) return workdir;
    } catch {
      // Reported below.
    }
    this.context.logger.warn({ connection_id: this.connectionId, workdir }, "workdir missing; starting in /");
    return "/";
  }

  /** exit-status/exit-signal after the last output, then EOF and close (channel.end does both). */
  private async finish(channel: ServerChannel, exit: ProcessExit): Promise<void> {
    const { signal } = this.disposed;
    await Promise.all([flushWritable(channel, signal), flushWritable(channel.stderr, signal)]);
    if (signal.aborted) return;
    if (exit.signal !== undefined) channel.exit(exit.signal, false, "");
    else channel.exit(exit.code);
    channel.end();
    // Input nobody reads any more would keep the channel from ever emitting close.
    channel.unpipe();
    channel.resume();
  }

  private fail(message: string): void {
    emitOcsf(this.context.logger, {
      class: "SSH",
      activity: "FAIL",
      severity: "LOW",
      message,
      fields: { connection_id: this.connectionId },
    });
  }
}

const BASH = "/bin/bash";
/**
 * node-pty leaves its PTY master descriptors inheritable (no FD_CLOEXEC), so every later child would
 * hold the terminals of other sessions; and whoever started the supervisor may have left it
 * descriptors without the flag too. Node cannot set it, so children start through a bash prelude
 * that closes every descriptor above 2 and then execs the real program (skipping it until the first
 * terminal was tried: a test harness's inherited descriptor reached children).
 */
const CLOSE_INHERITED_FDS =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash script; ${…} is bash's expansion
  'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && [ -e "/proc/$$/fd/$fd" ] && exec {fd}>&-; done; exec "$0" "$@"';

function withInheritedFdsClosed(file: string, args: string[]): { file: string; args: string[] } {
  if (!existsSync(BASH)) return { file, args };
  // --norc: bash sources ~/.bashrc even for -c when its stdin is a socket (Node's stdio pipes are).
  return { file: BASH, args: ["--noprofile", "--norc", "-c", CLOSE_INHERITED_FDS, file, ...args] };
}
