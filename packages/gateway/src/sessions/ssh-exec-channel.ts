import { OpenShellError } from "@openshell/core";
import type { Client, ClientChannel } from "ssh2";

export type ExecOutput =
  | { kind: "stdout"; data: Buffer }
  | { kind: "stderr"; data: Buffer }
  | { kind: "exit"; code: number };

export interface ExecRequest {
  command: string;
  stdin: Uint8Array;
  tty: boolean;
  /** 0 = none; on expiry the remote command is killed and the exit code is 124. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ExecChannelHooks {
  /** The sandbox accepted the command: from here on a failure is reported, never retried. */
  onStarted(): void;
  /** True once the SSH connection under the channel is gone. */
  connectionLost(): boolean;
  /** How long opening the channel and starting the command may take. */
  openTimeoutMs: number;
}

const HIGH_WATER_EVENTS = 32;
const LOW_WATER_EVENTS = 8;
const EXEC_TIMEOUT_EXIT_CODE = 124;

const SIGNAL_NUMBERS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  ABRT: 6,
  FPE: 8,
  KILL: 9,
  SEGV: 11,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  USR1: 10,
  USR2: 12,
};

/**
 * Runs one command on an exec channel of an established SSH connection (shared with other
 * channels) and yields its output as it arrives. The channel is paused while the consumer is
 * behind: SSH's per-channel window then stops the sandbox from sending more on this channel only,
 * so a slow client never makes the gateway buffer without bound and never stalls its neighbours.
 * Failures are OpenShellErrors: UNAVAILABLE when the connection was lost or the sandbox refused
 * the channel, DEADLINE_EXCEEDED when the channel did not open in time.
 */
export async function* runExecChannel(
  client: Client,
  request: ExecRequest,
  hooks: ExecChannelHooks,
): AsyncGenerator<ExecOutput> {
  const events: ExecOutput[] = [];
  let finished = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  let channel: ClientChannel | undefined;
  const push = (event: ExecOutput) => {
    events.push(event);
    if (events.length >= HIGH_WATER_EVENTS && channel) {
      channel.pause();
      channel.stderr.pause();
    }
    notify();
  };
  const finish = (error?: Error) => {
    if (finished) return;
    finished = true;
    failure = error;
    notify();
  };

  let timedOut = false;
  let commandTimer: NodeJS.Timeout | undefined;
  const openTimer = setTimeout(() => {
    finish(
      new OpenShellError(
        "deadline_exceeded",
        `the sandbox did not start the command within ${hooks.openTimeoutMs / 1000} s`,
      ),
    );
  }, hooks.openTimeoutMs);
  const onAbort = () => {
    finish(new OpenShellError("canceled", "the client cancelled the command"));
    // Closing the channel makes the sandbox hang up the command.
    channel?.close();
  };
  request.signal?.addEventListener("abort", onAbort, { once: true });

  const onChannel = (error: Error | undefined, stream: ClientChannel) => {
    clearTimeout(openTimer);
    if (error) {
      const why = hooks.connectionLost()
        ? "the SSH connection to the sandbox was lost before the command started"
        : `the sandbox refused the command: ${error.message}`;
      return finish(new OpenShellError("unavailable", why, { cause: error }));
    }
    if (finished) {
      // Cancelled or timed out while the channel was opening.
      stream.close();
      return;
    }
    channel = stream;
    hooks.onStarted();
    let exitCode: number | undefined;
    stream.on("data", (data: Buffer) => push({ kind: "stdout", data }));
    stream.stderr.on("data", (data: Buffer) => push({ kind: "stderr", data }));
    stream.on("exit", (code: number | null, signalName?: string) => {
      if (typeof code === "number") exitCode = code;
      else if (signalName) exitCode = 128 + (SIGNAL_NUMBERS[signalName] ?? 0);
    });
    stream.on("close", () => {
      if (timedOut) push({ kind: "exit", code: EXEC_TIMEOUT_EXIT_CODE });
      else if (exitCode !== undefined) push({ kind: "exit", code: exitCode });
      else if (hooks.connectionLost()) {
        return finish(
          new OpenShellError(
            "unavailable",
            "the SSH connection to the sandbox was lost while the command ran; it may or may not have finished",
          ),
        );
      } else push({ kind: "exit", code: 1 });
      finish();
    });
    if (request.timeoutMs > 0) {
      commandTimer = setTimeout(() => {
        timedOut = true;
        stream.signal("KILL");
        stream.close();
      }, request.timeoutMs);
    }
    if (request.stdin.length > 0) stream.write(Buffer.from(request.stdin));
    stream.end();
  };
  try {
    client.exec(
      request.command,
      { pty: request.tty ? { term: "xterm-256color", rows: 0, cols: 0 } : false },
      onChannel,
    );
  } catch (error) {
    // ssh2 throws synchronously when its socket is no longer writable.
    onChannel(error as Error, undefined as never);
  }

  try {
    for (;;) {
      const event = events.shift();
      if (event) {
        if (events.length <= LOW_WATER_EVENTS && channel) {
          channel.resume();
          channel.stderr.resume();
        }
        yield event;
        if (event.kind === "exit") return;
        continue;
      }
      if (finished) {
        if (failure) throw failure;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    clearTimeout(openTimer);
    clearTimeout(commandTimer);
    request.signal?.removeEventListener("abort", onAbort);
    // A consumer that stopped early (or a failure) must not leave the command running.
    channel?.close();
  }
}
