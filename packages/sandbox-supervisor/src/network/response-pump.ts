import type { Socket } from "node:net";
import type { Writable } from "node:stream";

/** A TLS read hands over at most one 16 KiB record per callback. */
const SLOT_BYTES = 16 * 1024;
/** Slots a pump grows to. */
const MAX_SLOTS = 8;
/**
 * Records one socket read of the upstream can still hand over after reading was told to stop (a
 * 64 KiB read of 16 KiB records): reading pauses while fewer slots than this are free, so those
 * land in slots too instead of in new buffers.
 */
const READ_BURST = 4;

/** What the stage does with a chunk before it goes on: false drops it (the connection is closing). */
export type ChunkCheck = (chunk: Buffer) => boolean;

/**
 * Carries an upstream's bytes to the client through a few reused buffers (Node's `onread` option
 * for the upstream socket) instead of a new Buffer per read. Decrypting a download yields a new
 * 16 KiB Buffer per TLS record by default, and that external memory drives V8 into full
 * collections in the supervisor's heap (bench/proxy-bench.ts, CPU per MiB through the L7 stage).
 *
 * A slot is read into again only after the client's write of it has completed; while half of
 * them are in flight, reading pauses and a completion resumes it. The client's own write queue is
 * therefore bounded by the slots (128 KiB). Bytes that arrive before `attach` (a server that
 * speaks first) are copied and wait, with reading paused.
 */
export class ResponsePump {
  /** Give to `net.connect`/`tls.connect` as `onread`. */
  readonly onread = {
    buffer: () => this.nextBuffer(),
    callback: (bytes: number, buffer: Uint8Array) => this.received(bytes, buffer),
  };
  private readonly slots: Buffer[] = [];
  private readonly inFlight = new Set<Uint8Array>();
  private readonly early: Buffer[] = [];
  private upstream: Socket | undefined;
  private client: Writable | undefined;
  private check: ChunkCheck = () => true;
  private paused = false;

  /** The socket that was given `onread` (reading is paused and resumed on it). */
  reads(upstream: Socket): void {
    this.upstream = upstream;
  }

  /** Starts writing to `client`, each chunk first passed to `check`. */
  attach(client: Writable, check: ChunkCheck): void {
    this.client = client;
    this.check = check;
    for (const chunk of this.early.splice(0)) {
      if (this.check(chunk)) client.write(chunk);
    }
    // Flowing from here on, also so that the socket's 'end' is emitted (no 'data' listener does it).
    this.paused = false;
    this.upstream?.resume();
  }

  private nextBuffer(): Uint8Array {
    const free = this.slots.find((slot) => !this.inFlight.has(slot));
    if (free) return free;
    if (this.slots.length < MAX_SLOTS) {
      const slot = Buffer.allocUnsafeSlow(SLOT_BYTES);
      this.slots.push(slot);
      return slot;
    }
    // Every slot is in flight and reading was asked to stop, but the TLS layer still hands over
    // the records it already decrypted: those get a buffer of their own.
    return Buffer.allocUnsafeSlow(SLOT_BYTES);
  }

  /** Returns false to pause reading. */
  private received(bytes: number, buffer: Uint8Array): boolean {
    const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
    const client = this.client;
    if (!client) {
      this.early.push(Buffer.from(chunk));
      this.paused = true;
      return false;
    }
    if (client.destroyed || !this.check(chunk)) return false;
    const slot = this.slots.includes(buffer as Buffer) ? buffer : undefined;
    if (slot) this.inFlight.add(slot);
    client.write(chunk, () => {
      if (slot) this.inFlight.delete(slot);
      this.resumeIfPaused();
    });
    if (this.inFlight.size <= MAX_SLOTS - READ_BURST) return true;
    this.paused = true;
    return false;
  }

  private resumeIfPaused(): void {
    if (!this.paused || !this.client || this.inFlight.size > MAX_SLOTS - READ_BURST) return;
    this.paused = false;
    this.upstream?.resume();
  }
}
