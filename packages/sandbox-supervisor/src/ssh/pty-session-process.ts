import { createRequire } from "node:module";
import { OpenShellError } from "@openshell/core";
import type * as NodePty from "node-pty";
import type { ServerChannel } from "ssh2";
import {
  KILL_GRACE_MS,
  type LaunchSpec,
  type ProcessExit,
  type PtySize,
  type SessionProcess,
} from "./session-process.js";
import { hangUpProcessTree, signalProcessTree, toProcessExit } from "./signals.js";

/**
 * node-pty, loaded with the first terminal, not at start-up: commands need no terminal, and loading
 * it costs a sandbox VM under TCG 0.1–0.3 s of its start (Node caches the module). It is optional:
 * where it was not installed (no compiler) or its addon does not load, terminals are refused saying
 * so, and everything else works.
 */
export function loadNodePty(load: NodeJS.Require = createRequire(import.meta.url)): typeof NodePty {
  try {
    return load("node-pty") as typeof NodePty;
  } catch (error) {
    throw new OpenShellError(
      "failed_precondition",
      `this sandbox has no terminals: node-pty is not installed beside the supervisor or does not load (${(error as Error).message.split("\n")[0]}); run commands without one (openshell sandbox exec NAME -- CMD), or install a compiler where openshell is installed (apt-get install -y build-essential python3), reinstall it and recreate the sandbox`,
      { cause: error },
    );
  }
}

export interface PtyLaunchOptions extends PtySize {
  term: string;
  /**
   * setpriv(1) to drop to the user with an empty supplementary group list: node-pty's own uid/gid
   * switch keeps the supervisor's supplementary groups (child_process clears them). Without it,
   * node-pty switches uid/gid itself.
   */
  setprivPath: string | undefined;
}

/**
 * A child on a pseudo-terminal (interactive shells, `ssh -t`): the terminal's output goes to the
 * channel and the channel's data is typed into it. The terminal stops being read while the
 * channel is full.
 */
export class PtySessionProcess implements SessionProcess {
  readonly pid: number;
  readonly exited: Promise<ProcessExit>;
  readonly gone: Promise<void>;
  private hasExited = false;

  private constructor(
    private readonly pty: NodePty.IPty,
    channel: ServerChannel,
  ) {
    this.pid = pty.pid;
    this.exited = new Promise((resolve) =>
      pty.onExit(({ exitCode, signal }) => {
        this.hasExited = true;
        resolve(toProcessExit(exitCode, signal ?? null));
      }),
    );
    this.gone = this.exited.then(() => undefined);

    let paused = false;
    pty.onData((data: string | Buffer) => {
      if (channel.write(data) || paused) return;
      paused = true;
      pty.pause();
      channel.once("drain", () => {
        paused = false;
        pty.resume();
      });
    });
    // node-pty queues writes until the terminal takes them; input here is typed or pasted text.
    channel.on("data", (data: Buffer) => {
      if (!this.hasExited) pty.write(data);
    });
  }

  static start(channel: ServerChannel, spec: LaunchSpec, options: PtyLaunchOptions): PtySessionProcess {
    const dropsPrivileges = spec.uid !== undefined && spec.gid !== undefined;
    const viaSetpriv = dropsPrivileges && options.setprivPath !== undefined;
    const file = viaSetpriv ? options.setprivPath! : spec.file;
    const args = viaSetpriv
      ? [`--reuid=${spec.uid}`, `--regid=${spec.gid}`, "--clear-groups", "--", spec.file, ...spec.args]
      : spec.args;
    const pty = loadNodePty().spawn(file, args, {
      name: options.term,
      cols: options.cols,
      rows: options.rows,
      cwd: spec.cwd,
      env: spec.env,
      encoding: null,
      ...(dropsPrivileges && !viaSetpriv ? { uid: spec.uid, gid: spec.gid } : {}),
    });
    return new PtySessionProcess(pty, channel);
  }

  resize(size: PtySize): void {
    if (this.hasExited) return;
    try {
      this.pty.resize(Math.max(1, size.cols), Math.max(1, size.rows));
    } catch {
      // The terminal went away between the exit and this request.
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.hasExited) signalProcessTree(this.pid, signal);
  }

  terminate(): void {
    if (!this.hasExited) hangUpProcessTree(this.pid, KILL_GRACE_MS);
  }
}
