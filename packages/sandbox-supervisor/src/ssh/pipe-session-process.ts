import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { OpenShellError } from "@openshell/core";
import type { ServerChannel } from "ssh2";
import { KILL_GRACE_MS, type LaunchSpec, type ProcessExit, type SessionProcess } from "./session-process.js";
import { hangUpProcessTree, signalProcessTree, toProcessExit } from "./signals.js";

/**
 * A child on plain pipes: stdout to the channel, stderr to the channel's extended data, the
 * channel's data to stdin (its EOF closes stdin). `pipe` carries backpressure both ways, so a slow
 * client pauses the child's output and a child that does not read stops the client's window.
 */
export class PipeSessionProcess implements SessionProcess {
  readonly exited: Promise<ProcessExit>;
  readonly gone: Promise<void>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly pid: number,
    private readonly channel: ServerChannel,
  ) {
    this.gone = new Promise((resolve) => child.once("exit", () => resolve()));
    this.exited = new Promise((resolve) =>
      child.once("close", (code, signal) => resolve(toProcessExit(code, signal))),
    );
    // EPIPE when the child exits without reading its input, EIO-style errors on teardown: the exit
    // path reports what matters.
    for (const stream of [child.stdin, child.stdout, child.stderr]) stream.on("error", () => {});
    child.on("error", () => {});
    child.stdout.pipe(channel, { end: false });
    child.stderr.pipe(channel.stderr, { end: false });
    channel.pipe(child.stdin);
  }

  /** Spawns `spec` in a new session (its own process group, so hang-up reaches its children). */
  static async start(channel: ServerChannel, spec: LaunchSpec): Promise<PipeSessionProcess> {
    const child = spawn(spec.file, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      uid: spec.uid,
      gid: spec.gid,
      detached: true,
      stdio: "pipe",
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", reject);
      });
    } catch (error) {
      for (const stream of [child.stdin, child.stdout, child.stderr]) stream.destroy();
      throw new OpenShellError("internal", `cannot start ${spec.file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return new PipeSessionProcess(child, child.pid!, channel);
  }

  private get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  resize(): void {}

  signal(signal: NodeJS.Signals): void {
    // Once reaped, the pid may already belong to someone else.
    if (this.running) signalProcessTree(this.pid, signal);
  }

  terminate(): void {
    this.channel.unpipe(this.child.stdin);
    if (this.running) hangUpProcessTree(this.pid, KILL_GRACE_MS);
    // A straggler that inherited stdout/stderr would otherwise hold our pipe ends open forever.
    void this.gone.then(() => {
      for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) stream.destroy();
    });
  }
}
