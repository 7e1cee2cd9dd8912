/**
 * The gRPC wire format of `openshell.v1.RelayFrame`, encoded and decoded by hand so relays can run on
 * raw HTTP/2 streams without a protobuf object and an async iterator per 16 KiB (the wire stays
 * gRPC: any gRPC client can still call RelayStream); kept over the generated codec because it measured
 * faster (architecture/relays.md). A gRPC message is a 5-byte prefix (compressed
 * flag, big-endian length) plus the protobuf; RelayFrame is `oneof { RelayInit init = 1; bytes data = 2; }`
 * and RelayInit is `{ string channel_id = 1; }`.
 */
export type RelayWireFrame =
  | { kind: "init"; channelId: string }
  | { kind: "data"; data: Buffer }
  | { kind: "empty" };

const FIELD_INIT = 0x0a; // field 1, length-delimited
const FIELD_DATA = 0x12; // field 2, length-delimited
const FIELD_CHANNEL_ID = 0x0a;

export class RelayFrameError extends Error {}

/** The gRPC path of RelayStream, for callers that frame it on a raw HTTP/2 stream. */
export const RELAY_STREAM_PATH = "/openshell.v1.OpenShell/RelayStream";
/** Largest data frame either side sends (upstream's relay chunk). */
export const RELAY_FRAME_BYTES = 16 * 1024;

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function envelope(body: Buffer): Buffer {
  const prefix = Buffer.allocUnsafe(5);
  prefix[0] = 0;
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

export function encodeInitFrame(channelId: string): Buffer {
  const id = Buffer.from(channelId, "utf8");
  const init = Buffer.concat([Buffer.from([FIELD_CHANNEL_ID, ...varint(id.length)]), id]);
  return envelope(Buffer.concat([Buffer.from([FIELD_INIT, ...varint(init.length)]), init]));
}

/** Bytes of one data frame carrying `length` bytes: gRPC prefix, field tag and length, the bytes. */
function dataFrameSize(length: number): number {
  return 5 + 1 + varint(length).length + length;
}

/** Writes one data frame carrying `data` into `out` at `at`; returns where the next one goes. */
function writeDataFrame(out: Buffer, at: number, data: Uint8Array): number {
  const fieldHeader = [FIELD_DATA, ...varint(data.length)];
  out[at] = 0;
  out.writeUInt32BE(fieldHeader.length + data.length, at + 1);
  out.set(fieldHeader, at + 5);
  out.set(data, at + 5 + fieldHeader.length);
  return at + 5 + fieldHeader.length + data.length;
}

/** One gRPC message carrying `data`: prefix and field header in one small buffer, then the bytes. */
export function encodeDataFrame(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(dataFrameSize(data.length));
  writeDataFrame(out, 0, data);
  return out;
}

/**
 * `chunk` as data frames of at most RELAY_FRAME_BYTES each, in order, in ONE buffer: a 64 KiB read
 * costs one write on the HTTP/2 stream instead of four (HTTP/2 splits it into DATA frames in native
 * code; every JS-level stream write costs far more than the bytes it carries).
 */
export function encodeDataFrames(chunk: Uint8Array): Buffer {
  const pieces: Uint8Array[] = [];
  for (let offset = 0; offset < chunk.length; offset += RELAY_FRAME_BYTES)
    pieces.push(chunk.subarray(offset, offset + RELAY_FRAME_BYTES));
  const out = Buffer.allocUnsafe(pieces.reduce((size, piece) => size + dataFrameSize(piece.length), 0));
  let at = 0;
  for (const piece of pieces) at = writeDataFrame(out, at, piece);
  return out;
}

/** Incremental decoder: feed it stream chunks, get whole frames back (data without copying). */
export class RelayFrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxMessageBytes: number = 4 * 1024 * 1024) {}

  push(chunk: Buffer): RelayWireFrame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: RelayWireFrame[] = [];
    for (;;) {
      if (this.pendingBytes < 5) break;
      const head = this.peek(5);
      if (head[0] !== 0) throw new RelayFrameError("compressed relay frames are not supported");
      const length = head.readUInt32BE(1);
      if (length > this.maxMessageBytes) {
        throw new RelayFrameError(`relay frame of ${length} bytes exceeds ${this.maxMessageBytes}`);
      }
      if (this.pendingBytes < 5 + length) break;
      const message = this.take(5 + length).subarray(5);
      frames.push(decodeRelayFrame(message));
    }
    return frames;
  }

  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /** The first `n` pending bytes (n <= pendingBytes), copying only when they span chunks. */
  private peek(n: number): Buffer {
    const first = this.pending[0] as Buffer;
    if (first.length >= n) return first;
    return this.gather(n, false);
  }

  /**
   * Removes and returns the first `n` pending bytes: a view of the first chunk when it holds them
   * all, else a copy of exactly those bytes (the rest stays a view of its chunk, so no byte is
   * copied twice when frames straddle the stream's chunks, which is nearly all of them).
   */
  private take(n: number): Buffer {
    const first = this.pending[0] as Buffer;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
    } else {
      out = this.gather(n, true);
    }
    this.pendingBytes -= n;
    return out;
  }

  /** Copies the first `n` pending bytes into a new buffer, dropping them from `pending` if `consume`. */
  private gather(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let index = 0;
    while (filled < n) {
      const chunk = this.pending[index] as Buffer;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (consume && used < chunk.length) this.pending[index] = chunk.subarray(used);
      else index++;
    }
    // One splice for all the chunks used up (shifting one by one is quadratic on many tiny chunks).
    if (consume) this.pending.splice(0, index);
    return out;
  }
}

/** Decodes one RelayFrame protobuf; unknown fields are skipped as protobuf requires. */
export function decodeRelayFrame(message: Buffer): RelayWireFrame {
  let frame: RelayWireFrame = { kind: "empty" };
  let offset = 0;
  while (offset < message.length) {
    const [tag, afterTag] = readVarint(message, offset);
    offset = afterTag;
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (wireType === 2) {
      const [length, afterLength] = readVarint(message, offset);
      const end = afterLength + length;
      if (end > message.length) throw new RelayFrameError("truncated relay frame");
      const value = message.subarray(afterLength, end);
      if (field === 1) frame = { kind: "init", channelId: decodeChannelId(value) };
      else if (field === 2) frame = { kind: "data", data: value };
      offset = end;
    } else if (wireType === 0) {
      offset = readVarint(message, offset)[1];
    } else if (wireType === 1) {
      offset += 8;
    } else if (wireType === 5) {
      offset += 4;
    } else {
      throw new RelayFrameError(`unsupported protobuf wire type ${wireType} in relay frame`);
    }
  }
  return frame;
}

function decodeChannelId(init: Buffer): string {
  let channelId = "";
  let offset = 0;
  while (offset < init.length) {
    const [tag, afterTag] = readVarint(init, offset);
    offset = afterTag;
    const wireType = tag & 7;
    if (wireType !== 2) {
      offset = wireType === 0 ? readVarint(init, offset)[1] : offset + (wireType === 1 ? 8 : 4);
      continue;
    }
    const [length, afterLength] = readVarint(init, offset);
    if (Math.floor(tag / 8) === 1)
      channelId = init.subarray(afterLength, afterLength + length).toString("utf8");
    offset = afterLength + length;
  }
  return channelId;
}

function readVarint(buffer: Buffer, start: number): [number, number] {
  let value = 0;
  let multiplier = 1;
  for (let offset = start; offset < buffer.length && offset < start + 10; offset++) {
    const byte = buffer[offset] as number;
    value += (byte & 0x7f) * multiplier;
    if (byte < 0x80) return [value, offset + 1];
    multiplier *= 128;
  }
  throw new RelayFrameError("truncated varint in relay frame");
}
