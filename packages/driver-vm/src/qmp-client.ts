import net from "node:net";
import { OpenShellError } from "@openshell/core";

const CONNECT_TIMEOUT_MS = 2_000;

/**
 * One QMP connection to a QEMU: the greeting and `qmp_capabilities`, then commands one at a time
 * (each answer is matched by its `id`; asynchronous events in between are skipped). Errors are
 * `OpenShellError`s: `unavailable` when QEMU cannot be reached or hangs up, `internal` when it
 * answers a command with an error (its class and description in the message).
 */
export class QmpClient {
  private buffered = "";
  private nextId = 1;
  private readonly waiting = new Map<
    string,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk) => this.onData(chunk));
    const fail = (error?: Error) => {
      this.closedError = new OpenShellError(
        "unavailable",
        `QMP connection closed${error ? `: ${error.message}` : ""}`,
      );
      for (const pending of this.waiting.values()) pending.reject(this.closedError);
      this.waiting.clear();
    };
    socket.on("error", fail);
    socket.on("close", () => fail());
  }

  static async connect(socketPath: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<QmpClient> {
    const socket = net.connect(socketPath);
    const client = new QmpClient(socket);
    const greeting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new OpenShellError("unavailable", `QMP at ${socketPath} did not greet within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      client.onGreeting = () => {
        clearTimeout(timer);
        resolve();
      };
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(new OpenShellError("unavailable", `cannot connect to QMP at ${socketPath}: ${error.message}`));
      });
    });
    await greeting;
    await client.execute("qmp_capabilities");
    return client;
  }

  private onGreeting: (() => void) | undefined;

  /** Runs one command; resolves with its `return` value. */
  execute(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new OpenShellError("unavailable", `QMP ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered += chunk.toString("utf8");
    for (let newline = this.buffered.indexOf("\n"); newline >= 0; newline = this.buffered.indexOf("\n")) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: { QMP?: unknown; id?: unknown; return?: unknown; error?: { class?: string; desc?: string } };
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (message.QMP !== undefined) {
      this.onGreeting?.();
      this.onGreeting = undefined;
      return;
    }
    const pending = typeof message.id === "string" ? this.waiting.get(message.id) : undefined;
    if (!pending) return; // an event, or an answer nobody waits for any more
    this.waiting.delete(message.id as string);
    if (message.error)
      pending.reject(
        new OpenShellError(
          "internal",
          `QEMU refused: ${message.error.class ?? "Error"}: ${message.error.desc ?? ""}`,
        ),
      );
    else pending.resolve(message.return);
  }
}

/** One QMP command on a connection of its own (e.g. the power button). */
export async function qmpCommand(socketPath: string, command: string): Promise<void> {
  const client = await QmpClient.connect(socketPath);
  try {
    await client.execute(command, undefined, 2_000);
  } finally {
    client.close();
  }
}
