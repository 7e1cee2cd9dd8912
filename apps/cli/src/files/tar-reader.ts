import { OpenShellError } from "@openshell/core";

/**
 * A streaming reader of tar archives as GNU tar and POSIX pax write them: ustar headers (with the
 * prefix field), GNU long names and link names (`L`/`K`), pax extended headers (`x` for the next
 * entry, `g` for all that follow: path, linkpath, size, mtime) and base-256 numbers. It only
 * parses; what may be written where is the extractor's business, so every entry type is reported,
 * hostile ones included.
 */

const BLOCK = 512;
/** Bounds what one metadata record (pax header, GNU long name) may hold in memory. */
const MAX_METADATA_BYTES = 1024 * 1024;
/** Body chunks handed to the consumer at most this big. */
const MAX_CHUNK = 64 * 1024;

type TarEntryKind =
  | "file"
  | "directory"
  | "symlink"
  | "hardlink"
  | "character-device"
  | "block-device"
  | "fifo"
  | "unsupported";

export interface TarEntry {
  /** The name as stored (after long-name and pax overrides), not yet checked in any way. */
  path: string;
  kind: TarEntryKind;
  /** The raw typeflag, for messages about unsupported entries. */
  typeflag: string;
  /** Permission bits and setuid/setgid/sticky as stored. */
  mode: number;
  size: number;
  /** Seconds since the epoch (may carry a fraction from pax). */
  mtime: number;
  /** Target of a symlink or hard link. */
  linkpath: string;
  /** Set when a name or link name is not valid UTF-8 (it is then shown with U+FFFD). */
  undecodableName: boolean;
}

/** An entry and a way to read its data; the data not read is skipped before the next entry. */
export interface TarEntryWithBody {
  entry: TarEntry;
  body(): AsyncGenerator<Buffer>;
}

const KINDS: Readonly<Record<string, TarEntryKind>> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "character-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
  // GNU "dumpdir": a directory followed by a listing of its contents, which is skipped.
  D: "directory",
};

function corrupt(message: string): OpenShellError {
  return new OpenShellError("internal", `the archive from the sandbox is not valid tar: ${message}`);
}

/** Pulls exact byte counts out of an async iterable of chunks. */
class ByteSource {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;

  constructor(private readonly iterator: AsyncIterator<Uint8Array>) {}

  /** The next `length` bytes; fewer only at the end of the input. */
  async read(length: number): Promise<Buffer> {
    while (this.buffered < length && (await this.pull()));
    return this.take(Math.min(length, this.buffered));
  }

  /** Up to `max` bytes that are already there (at least one, unless the input ended). */
  async readSome(max: number): Promise<Buffer> {
    if (this.buffered === 0) await this.pull();
    return this.take(Math.min(max, this.buffered));
  }

  async skip(length: number): Promise<number> {
    let skipped = 0;
    while (skipped < length) {
      const chunk = await this.readSome(length - skipped);
      if (chunk.length === 0) break;
      skipped += chunk.length;
    }
    return skipped;
  }

  /** Reads and drops everything left (so the producer is not killed by a closed pipe). */
  async drain(): Promise<void> {
    this.chunks.length = 0;
    this.buffered = 0;
    while (await this.pull()) {
      this.chunks.length = 0;
      this.buffered = 0;
    }
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  private take(length: number): Buffer {
    if (length === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= length) {
      const taken = first.subarray(0, length);
      if (first.length === length) this.chunks.shift();
      else this.chunks[0] = first.subarray(length);
      this.buffered -= length;
      return taken;
    }
    const parts: Buffer[] = [];
    let needed = length;
    while (needed > 0) {
      const chunk = this.chunks[0]!;
      if (chunk.length <= needed) {
        parts.push(chunk);
        this.chunks.shift();
        needed -= chunk.length;
      } else {
        parts.push(chunk.subarray(0, needed));
        this.chunks[0] = chunk.subarray(needed);
        needed = 0;
      }
    }
    this.buffered -= length;
    return Buffer.concat(parts, length);
  }
}

interface Header {
  name: Buffer;
  mode: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
}

/** A NUL-terminated header field. */
function field(block: Buffer, offset: number, length: number): Buffer {
  const raw = block.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return end < 0 ? raw : raw.subarray(0, end);
}

/** An octal number, or GNU's base-256 (high bit of the first byte set) for large values. */
function numberField(block: Buffer, offset: number, length: number, what: string): number {
  const raw = block.subarray(offset, offset + length);
  if ((raw[0]! & 0x80) !== 0) {
    if (raw[0] === 0xff) throw corrupt(`negative ${what}`);
    let value = raw[0]! & 0x7f;
    for (const byte of raw.subarray(1)) {
      value = value * 256 + byte;
      if (!Number.isSafeInteger(value)) throw corrupt(`${what} too large`);
    }
    return value;
  }
  const text = raw
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .replace(/^ +/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw corrupt(`bad ${what} field '${text}'`);
  const value = Number.parseInt(text, 8);
  if (!Number.isSafeInteger(value)) throw corrupt(`${what} too large`);
  return value;
}

function checksumMatches(block: Buffer): boolean {
  const stored = numberField(block, 148, 8, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parseHeader(block: Buffer): Header {
  if (!checksumMatches(block)) throw corrupt("header checksum mismatch");
  const magic = block.subarray(257, 263).toString("latin1");
  let name = field(block, 0, 100);
  // POSIX ustar splits long names into prefix/name; GNU's own format uses that space for other data.
  if (magic === "ustar\0") {
    const prefix = field(block, 345, 155);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from("/"), name]);
  }
  return {
    name,
    mode: numberField(block, 100, 8, "mode"),
    size: numberField(block, 124, 12, "size"),
    mtime: numberField(block, 136, 12, "mtime"),
    typeflag: String.fromCharCode(block[156]!),
    linkname: field(block, 157, 100),
  };
}

/** pax records: "<length> <key>=<value>\n", the length counting the whole record. */
function parsePaxRecords(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let offset = 0;
  while (offset < data.length) {
    if (data[offset] === 0) break; // padding some writers leave
    const space = data.indexOf(0x20, offset);
    const lengthText = space < 0 ? "" : data.subarray(offset, space).toString("latin1");
    const length = /^[0-9]+$/.test(lengthText) ? Number(lengthText) : Number.NaN;
    if (!Number.isSafeInteger(length) || length <= space - offset + 1 || offset + length > data.length) {
      throw corrupt("bad pax header record");
    }
    const record = data.subarray(space + 1, offset + length);
    if (record[record.length - 1] !== 0x0a) throw corrupt("pax header record without a newline");
    const equals = record.indexOf(0x3d);
    if (equals < 0) throw corrupt("pax header record without '='");
    records.set(record.subarray(0, equals).toString("utf8"), record.subarray(equals + 1, record.length - 1));
    offset += length;
  }
  return records;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function decodeName(bytes: Buffer): { text: string; valid: boolean } {
  try {
    return { text: UTF8.decode(bytes), valid: true };
  } catch {
    return { text: bytes.toString("utf8"), valid: false };
  }
}

function paxNumber(value: Buffer | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const text = value.toString("latin1");
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) throw corrupt(`bad pax ${what} '${text}'`);
  const number = Number(text);
  if (!Number.isFinite(number) || (what === "size" && !Number.isSafeInteger(number))) {
    throw corrupt(`pax ${what} too large`);
  }
  return number;
}

/**
 * Yields the archive's entries in order. Ends at the end-of-archive marker (the rest of the input is
 * read and dropped); an input that ends before it is a truncated archive and throws.
 */
export async function* readTarEntries(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntryWithBody> {
  const input = new ByteSource(source[Symbol.asyncIterator]());
  const globalPax = new Map<string, Buffer>();
  let localPax = new Map<string, Buffer>();
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;

  const readMetadata = async (size: number, what: string): Promise<Buffer> => {
    if (size > MAX_METADATA_BYTES) throw corrupt(`${what} of ${size} bytes`);
    const data = await input.read(size);
    if (data.length < size) throw corrupt("truncated");
    await skipPadding(size);
    return data;
  };
  const skipPadding = async (size: number): Promise<void> => {
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if ((await input.skip(padding)) < padding) throw corrupt("truncated");
  };

  while (true) {
    const block = await input.read(BLOCK);
    if (block.length === 0) throw corrupt("it ended without the end-of-archive marker (truncated)");
    if (block.length < BLOCK) throw corrupt("truncated");
    if (block.every((byte) => byte === 0)) {
      // The marker is two zero blocks; tolerate a writer that stopped after one.
      await input.drain();
      return;
    }
    const header = parseHeader(block);
    switch (header.typeflag) {
      case "x":
        localPax = parsePaxRecords(await readMetadata(header.size, "pax header"));
        continue;
      case "g":
        for (const [key, value] of parsePaxRecords(await readMetadata(header.size, "pax header"))) {
          if (value.length === 0) globalPax.delete(key);
          else globalPax.set(key, value);
        }
        continue;
      case "L":
        longName = field(await readMetadata(header.size, "GNU long name"), 0, header.size);
        continue;
      case "K":
        longLink = field(await readMetadata(header.size, "GNU long link name"), 0, header.size);
        continue;
    }

    const pax = new Map([...globalPax, ...localPax]);
    const nameBytes = pax.get("path") ?? longName ?? header.name;
    const linkBytes = pax.get("linkpath") ?? longLink ?? header.linkname;
    const size = paxNumber(pax.get("size"), "size") ?? header.size;
    const mtime = paxNumber(pax.get("mtime"), "mtime") ?? header.mtime;
    localPax = new Map();
    longName = undefined;
    longLink = undefined;

    const name = decodeName(nameBytes);
    const link = decodeName(linkBytes);
    let kind = KINDS[header.typeflag] ?? "unsupported";
    // Pre-POSIX archives mark directories only by a trailing slash.
    if (kind === "file" && header.typeflag !== "7" && name.text.endsWith("/")) kind = "directory";
    const entry: TarEntry = {
      path: name.text,
      kind,
      typeflag: header.typeflag,
      mode: header.mode,
      size,
      mtime,
      linkpath: link.text,
      undecodableName: !name.valid || !link.valid,
    };

    let remaining = size;
    async function* body(): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        const chunk = await input.readSome(Math.min(remaining, MAX_CHUNK));
        if (chunk.length === 0) throw corrupt("truncated");
        remaining -= chunk.length;
        yield chunk;
      }
    }
    yield { entry, body };
    if ((await input.skip(remaining)) < remaining) throw corrupt("truncated");
    remaining = 0;
    await skipPadding(size);
  }
}
