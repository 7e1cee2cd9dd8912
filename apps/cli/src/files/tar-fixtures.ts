// Builds tar archives byte by byte for the tests of this directory (hostile ones included); not
// used by the CLI itself.

const BLOCK = 512;

export interface CraftedEntry {
  name: string;
  /** ustar typeflag: "0" file, "1" hard link, "2" symlink, "3" char device, "5" dir, "6" FIFO… */
  type: string;
  mode?: number;
  data?: string | Buffer;
  linkname?: string;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** POSIX ustar prefix field (magic "ustar\0"); default: GNU magic and no prefix. */
  prefix?: string;
  /** A size field that differs from the data (for truncation tests). */
  sizeOverride?: number;
}

function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, "0")}\0`;
}

/** One 512-byte header block with a correct checksum. */
function tarHeader(entry: CraftedEntry, size: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  const write = (text: string | Buffer, offset: number, length: number) => {
    const bytes = typeof text === "string" ? Buffer.from(text, "utf8") : text;
    if (bytes.length > length) throw new Error(`field at ${offset} too long: ${bytes.length} > ${length}`);
    bytes.copy(block, offset);
  };
  write(entry.name, 0, 100);
  write(octal(entry.mode ?? 0o644, 8), 100, 8);
  write(octal(entry.uid ?? 0, 8), 108, 8);
  write(octal(entry.gid ?? 0, 8), 116, 8);
  write(octal(size, 12), 124, 12);
  write(octal(entry.mtime ?? 1_700_000_000, 12), 136, 12);
  write("        ", 148, 8);
  write(entry.type, 156, 1);
  write(entry.linkname ?? "", 157, 100);
  if (entry.prefix !== undefined) {
    write("ustar\u000000", 257, 8);
    write(entry.prefix, 345, 155);
  } else {
    write("ustar  \0", 257, 8);
  }
  write("root", 265, 32);
  write("root", 297, 32);
  write(octal(entry.devmajor ?? 0, 8), 329, 8);
  write(octal(entry.devminor ?? 0, 8), 337, 8);
  let sum = 0;
  for (const byte of block) sum += byte;
  write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return block;
}

function padded(data: Buffer): Buffer {
  const padding = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return Buffer.concat([data, Buffer.alloc(padding)]);
}

/** A header plus its data, padded to whole blocks. */
export function tarEntry(entry: CraftedEntry): Buffer {
  const data = typeof entry.data === "string" ? Buffer.from(entry.data) : (entry.data ?? Buffer.alloc(0));
  return Buffer.concat([tarHeader(entry, entry.sizeOverride ?? data.length), padded(data)]);
}

/** GNU tar's long-name record ("L", or "K" for a link name) that names the next entry. */
export function gnuLongName(name: string, type: "L" | "K" = "L"): Buffer {
  return tarEntry({ name: "././@LongLink", type, data: Buffer.from(`${name}\0`) });
}

/** A pax extended header ("x", or "g" for a global one). */
export function paxHeader(records: Record<string, string>, type: "x" | "g" = "x"): Buffer {
  const lines = Object.entries(records).map(([key, value]) => {
    const body = ` ${key}=${value}\n`;
    // The length counts its own digits: grow it until it is stable.
    let length = Buffer.byteLength(body);
    while (String(length).length + Buffer.byteLength(body) !== length) {
      length = String(length).length + Buffer.byteLength(body);
    }
    return `${length}${body}`;
  });
  return tarEntry({ name: "./PaxHeaders/entry", type, data: lines.join("") });
}

/** Two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** The buffer as a stream of small, unevenly sized chunks (parsers must not rely on alignment). */
export async function* chunked(data: Buffer, sizes = [1, 7, 500, 513, 4096]): AsyncGenerator<Buffer> {
  let offset = 0;
  for (let index = 0; offset < data.length; index++) {
    const size = sizes[index % sizes.length]!;
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}
