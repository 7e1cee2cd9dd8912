import type { ChildProcess } from "node:child_process";

/** How a child process ended. */
export interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The tail of what it wrote to stderr. */
  stderr: string;
  /** Set when the process could not be started at all. */
  spawnError?: Error;
  /** Set when we killed it because the other end of the pipe failed. */
  killedByUs: boolean;
}

const STDERR_TAIL_BYTES = 64 * 1024;
const STDERR_TAIL_LINES = 20;

export function succeeded(outcome: ProcessOutcome): boolean {
  return !outcome.spawnError && outcome.code === 0;
}

/** "exit code 2" or "signal SIGTERM", for error messages. */
export function describeExit(outcome: ProcessOutcome): string {
  if (outcome.spawnError) return outcome.spawnError.message;
  return outcome.signal ? `signal ${outcome.signal}` : `exit code ${outcome.code}`;
}

/**
 * Runs `producer.stdout` into `consumer.stdin` until both processes have ended. A consumer that
 * fails while the producer is still writing stops the producer (otherwise it would block on a full
 * pipe forever); one that succeeds early lets the producer finish into the void. `onData` sees every chunk that passes through.
 */
export async function pipeProcesses(
  producer: ChildProcess,
  consumer: ChildProcess,
  onData?: (chunk: Buffer) => void,
): Promise<{ producer: ProcessOutcome; consumer: ProcessOutcome }> {
  let producerEnded = false;
  let producerOutputEnded = false;
  let producerKilled = false;
  producer.stdout?.once("end", () => {
    producerOutputEnded = true;
  });
  consumer.stdin?.on("error", () => {}); // EPIPE when the consumer exits first: its outcome tells why
  consumer.stdout?.resume();
  if (onData) producer.stdout?.on("data", onData);
  if (consumer.stdin) producer.stdout?.pipe(consumer.stdin);

  const producerDone = watchProcess(producer).then((outcome) => {
    producerEnded = true;
    // A producer that never started has no stdout to end the pipe with.
    if (consumer.stdin && !consumer.stdin.writableEnded) consumer.stdin.end();
    return outcome;
  });
  const consumerDone = watchProcess(consumer).then((outcome) => {
    if (!producerEnded) {
      if (consumer.stdin) producer.stdout?.unpipe(consumer.stdin);
      producer.stdout?.resume();
      // Only a producer still writing can block on the pipe; one that is done is left to exit.
      if (!succeeded(outcome) && !producerOutputEnded) {
        producerKilled = true;
        producer.kill();
      }
    }
    return outcome;
  });
  const [producerOutcome, consumerOutcome] = await Promise.all([producerDone, consumerDone]);
  return { producer: { ...producerOutcome, killedByUs: producerKilled }, consumer: consumerOutcome };
}

/** Resolves once the process has exited and its stdio is closed, or could not be started. */
export function watchProcess(child: ChildProcess): Promise<ProcessOutcome> {
  const tail = new StderrTail();
  child.stderr?.on("data", (chunk: Buffer) => tail.push(chunk));
  return new Promise((resolve) => {
    child.on("error", (error) => {
      // "error" also reports a failed kill() of a running process; only a failed start ends it.
      if (child.pid === undefined) {
        resolve({ code: null, signal: null, stderr: tail.text(), spawnError: error, killedByUs: false });
      }
    });
    child.once("close", (code, signal) => resolve({ code, signal, stderr: tail.text(), killedByUs: false }));
  });
}

/** Keeps the last bytes of a stream; reports its last lines. */
class StderrTail {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= STDERR_TAIL_BYTES) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  text(): string {
    const lines = Buffer.concat(this.chunks).toString("utf8").trim().split("\n");
    return lines.slice(-STDERR_TAIL_LINES).join("\n");
  }
}
