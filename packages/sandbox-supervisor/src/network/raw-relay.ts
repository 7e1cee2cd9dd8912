import { createConnection, type Socket } from "node:net";

/** Each relayed upstream reads into one buffer of this size, its own, reused for every read. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * An upstream connection dialed for the raw relay. Its reads land in one buffer of its own instead
 * of a new one per read (the way Node reads by default): a tunnel moving a download then allocates
 * nothing per chunk, and the supervisor's heap no longer pays a full garbage collection every few
 * tens of MiB relayed (measured in bench/proxy-bench.ts: CPU per MiB relayed). A chunk is written
 * on to the client before the buffer is read into again: reading pauses while a write still holds
 * it. Bytes that arrive before `relayTo` (a server that speaks first) wait, copied, with reading paused.
 */
export class RelayUpstream {
  readonly socket: Socket;
  private client: Socket | undefined;
  private early: Buffer[] = [];
  /** The write whose completion resumes reading (0: reading is not paused for a write). */
  private awaitedWrite = 0;
  private writes = 0;

  private constructor(host: string, port: number, timeoutMs: number) {
    this.socket = createConnection({
      host,
      port,
      timeout: timeoutMs,
      allowHalfOpen: true,
      onread: {
        // One buffer (a function would be called for a new one after every read).
        buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES),
        callback: (bytes: number, buffer: Uint8Array) => this.received(bytes, buffer),
      },
    });
  }

  /** Connects; rejects with the socket's error, or after `timeoutMs` without an answer. */
  static async connect(host: string, port: number, timeoutMs: number): Promise<RelayUpstream> {
    const upstream = new RelayUpstream(host, port, timeoutMs);
    await connected(upstream.socket, timeoutMs);
    return upstream;
  }

  /**
   * Relays both ways between `client` and this upstream: `clientHead` (bytes the client sent after
   * its request head) first, half-close passed on, either side's error or close ends both.
   */
  relayTo(client: Socket, clientHead: Buffer): void {
    const upstream = this.socket;
    // A client that shuts down its sending side still reads the answer (the proxy's server closes
    // both sides on a client's end by default).
    client.allowHalfOpen = true;
    if (clientHead.length > 0) upstream.write(clientHead);
    client.pipe(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", () => upstream.destroySoon());
    upstream.on("close", () => client.destroySoon());
    upstream.on("end", () => client.end());
    this.client = client;
    for (const chunk of this.early.splice(0)) client.write(chunk);
    upstream.resume();
  }

  /** Returns false to pause reading until the buffer is free again. */
  private received(bytes: number, buffer: Uint8Array): boolean {
    const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
    const client = this.client;
    if (!client) {
      this.early.push(Buffer.from(chunk));
      return false;
    }
    if (client.destroyed) return false;
    const write = ++this.writes;
    client.write(chunk, () => {
      if (this.awaitedWrite !== write) return;
      this.awaitedWrite = 0;
      this.socket.resume();
    });
    // Written to the kernel at once: the buffer is free. Else the write (or the client's queue) holds it.
    if (client.writableLength === 0) return true;
    this.awaitedWrite = write;
    return false;
  }
}

/**
 * Resolves once `socket` (created with `timeout: timeoutMs`) is connected, with Nagle off and the
 * connect timeout cleared; rejects with its error, or destroys it after `timeoutMs` without an answer.
 */
export function connected(socket: Socket, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      socket.setTimeout(0);
      socket.setNoDelay(true);
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    });
    socket.once("error", reject);
  });
}
