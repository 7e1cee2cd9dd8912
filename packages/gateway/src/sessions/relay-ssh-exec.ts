import type { Duplex } from "node:stream";
import { Client, type ClientChannel } from "ssh2";

export type ExecOutput =
  | { kind: "stdout"; data: Buffer }
  | { kind: "stderr"; data: Buffer }
  | { kind: "exit"; code: number };

export interface RelaySshExecOptions {
  command: string;
  stdin: Uint8Array;
  tty: boolean;
  /** 0 = none; on expiry the remote command is killed and the exit code is 124. */
  timeoutMs: number;
  signal?: AbortSignal;
}

const HIGH_WATER_EVENTS = 32;
const LOW_WATER_EVENTS = 8;
const HANDSHAKE_TIMEOUT_MS = 10_000;
export const EXEC_TIMEOUT_EXIT_CODE = 124;

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
 * Runs one command over an SSH connection carried by `relay` (the supervisor's Unix-socket SSH
 * server at the other end) and yields its output as it arrives. The SSH streams are paused while
 * the consumer is behind, so a slow client never makes the gateway buffer without bound.
 */
export async function* execOverRelay(
  relay: Duplex,
  options: RelaySshExecOptions,
): AsyncGenerator<ExecOutput> {
  const client = new Client();
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
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => client.end();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  client.on("error", (error) => finish(new Error(`ssh to the sandbox failed: ${error.message}`)));
  client.on("close", () => finish(new Error("sandbox closed the connection before the command exited")));
  client.on("ready", () => {
    client.exec(
      options.command,
      { pty: options.tty ? { term: "xterm-256color", rows: 0, cols: 0 } : false },
      (error, stream) => {
        if (error) return finish(new Error(`sandbox refused the command: ${error.message}`));
        channel = stream;
        let exitCode: number | undefined;
        stream.on("data", (data: Buffer) => push({ kind: "stdout", data }));
        stream.stderr.on("data", (data: Buffer) => push({ kind: "stderr", data }));
        stream.on("exit", (code: number | null, signalName?: string) => {
          if (typeof code === "number") exitCode = code;
          else if (signalName) exitCode = 128 + (SIGNAL_NUMBERS[signalName] ?? 0);
        });
        stream.on("close", () => {
          push({ kind: "exit", code: timedOut ? EXEC_TIMEOUT_EXIT_CODE : (exitCode ?? 1) });
          finish();
          client.end();
        });
        if (options.timeoutMs > 0) {
          timer = setTimeout(() => {
            timedOut = true;
            stream.signal("KILL");
            stream.close();
          }, options.timeoutMs);
        }
        if (options.stdin.length > 0) stream.write(Buffer.from(options.stdin));
        stream.end();
      },
    );
  });
  client.connect({
    sock: relay,
    username: "sandbox",
    readyTimeout: HANDSHAKE_TIMEOUT_MS,
    hostVerifier: () => true,
    keepaliveInterval: 0,
  });

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
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    client.end();
    relay.destroy();
  }
}
