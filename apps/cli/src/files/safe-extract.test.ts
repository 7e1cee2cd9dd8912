import { execFileSync } from "node:child_process";
import { chmod, lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ExtractSummary, extractTarSafely, type RefusedEntry } from "./safe-extract.js";
import {
  type CraftedEntry,
  chunked,
  endOfArchive,
  gnuLongName,
  paxHeader,
  tarEntry,
} from "./tar-fixtures.js";
import { hashTree, tempDirs } from "./test-fixtures.js";

const UMASK = 0o022;
const LONG_DIR = `${"d".repeat(60)}/${"e".repeat(60)}`;
const LONG_NAME = `${LONG_DIR}/${"f".repeat(120)}.txt`;

/** Every path under `root`, relative, with its type: what landed where. */
async function listTree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .map((entry) => {
      const relative = path.relative(root, path.join(entry.parentPath, entry.name));
      const kind = entry.isSymbolicLink()
        ? "link"
        : entry.isDirectory()
          ? "dir"
          : entry.isFile()
            ? "file"
            : "other";
      return `${relative} (${kind})`;
    })
    .sort();
}

const modeOf = async (file: string) => (await lstat(file)).mode & 0o7777;

async function extract(
  archive: Buffer,
  dest: string,
): Promise<ExtractSummary & { reported: RefusedEntry[] }> {
  const reported: RefusedEntry[] = [];
  const summary = await extractTarSafely(chunked(archive), {
    dest,
    onRefused: (entry) => reported.push(entry),
  });
  return { ...summary, reported };
}

describe("extractTarSafely with a hostile archive", () => {
  const temp = tempDirs();
  let savedUmask = 0;
  beforeAll(() => {
    savedUmask = process.umask(UMASK);
  });
  afterAll(() => {
    process.umask(savedUmask);
  });
  afterEach(() => temp.cleanup());

  it("writes only masked files, directories and links inside the destination", async () => {
    const outside = await temp.make("openshell-outside-");
    const dest = path.join(outside, "dest");
    await mkdir(dest, { mode: 0o750 });
    await chmod(dest, 0o750);
    const destBefore = await stat(dest);
    await writeFile(path.join(outside, "victim"), "untouched");

    const entries = (
      [
        { name: "./", type: "5", mode: 0o777, mtime: 1 },
        { name: "./setuid-root", type: "0", mode: 0o4755, uid: 0, data: "#!/bin/sh\nid\n" },
        { name: "./setgid", type: "0", mode: 0o2777, data: "g" },
        { name: "./char-device", type: "3", mode: 0o666, devmajor: 1, devminor: 3 },
        { name: "./block-device", type: "4", mode: 0o660, devmajor: 8, devminor: 0 },
        { name: "./fifo", type: "6", mode: 0o666 },
        { name: "./world-writable/", type: "5", mode: 0o777 },
        { name: "./sticky/", type: "5", mode: 0o1777 },
        { name: "./read-only/", type: "5", mode: 0o555 },
        { name: "./read-only/inside", type: "0", mode: 0o444, data: "written into a 0555 directory" },
        { name: "../escape", type: "0", data: "escaped" },
        { name: "./sub/../../escape2", type: "0", data: "escaped" },
        { name: `${outside}/absolute`, type: "0", data: "absolute" },
        { name: "./passwd", type: "1", linkname: "/etc/passwd" },
        { name: "./victim-link", type: "1", linkname: "../victim" },
        { name: "./not-yet", type: "1", linkname: "later" },
        { name: "./hard-ok", type: "1", linkname: "./setgid" },
        { name: "./etc", type: "2", linkname: outside },
        { name: "./etc/planted", type: "0", data: "through the symlink" },
        { name: "./etc", type: "5", mode: 0o755 },
        { name: "./etc/after", type: "0", data: "the symlink was replaced by a real directory" },
        { name: "./to-victim", type: "2", linkname: "../victim" },
        { name: "./to-victim", type: "0", data: "replaces the link, not the victim" },
        { name: "./dangling", type: "2", linkname: "/nonexistent/target" },
        { name: "./weird-type", type: "Z" },
        gnuLongName(LONG_NAME),
        { name: "ignored-short-name", type: "0", mode: 0o600, data: "long name" },
        gnuLongName("../gnu-escape"),
        { name: "ignored", type: "0", data: "escaped" },
        paxHeader({ path: "pax/ünïcode name.txt" }),
        { name: "ignored-too", type: "0", data: "pax path" },
        paxHeader({ path: "../pax-escape" }),
        { name: "ignored-three", type: "0", data: "escaped" },
        paxHeader({ linkpath: "./setgid" }),
        { name: "./pax-link", type: "2", linkname: "ignored" },
        { name: "name.txt", prefix: "ustar/prefix", type: "0", data: "prefixed" },
      ] as Array<CraftedEntry | Buffer>
    ).map((entry) => (Buffer.isBuffer(entry) ? entry : tarEntry(entry)));

    const result = await extract(Buffer.concat([...entries, endOfArchive()]), dest);

    // The destination itself kept its mode and owner.
    const destAfter = await stat(dest);
    expect(destAfter.mode & 0o7777).toBe(0o750);
    expect([destAfter.uid, destAfter.gid]).toEqual([destBefore.uid, destBefore.gid]);
    // Nothing outside it changed.
    expect(await listTree(outside)).toEqual(expect.arrayContaining(["victim (file)", "dest (dir)"]));
    expect((await listTree(outside)).filter((entry) => !entry.startsWith("dest"))).toEqual(["victim (file)"]);
    expect(await readFile(path.join(outside, "victim"), "utf8")).toBe("untouched");

    expect(await listTree(dest)).toEqual(
      [
        "dangling (link)",
        "etc (dir)",
        "etc/after (file)",
        "hard-ok (file)",
        "pax (dir)",
        "pax/ünïcode name.txt (file)",
        "pax-link (link)",
        "read-only (dir)",
        "read-only/inside (file)",
        "setgid (file)",
        "setuid-root (file)",
        "sticky (dir)",
        "to-victim (file)",
        "ustar (dir)",
        "ustar/prefix (dir)",
        "ustar/prefix/name.txt (file)",
        "world-writable (dir)",
        ...LONG_NAME.split("/").map((_, index, parts) => {
          const partial = parts.slice(0, index + 1).join("/");
          return `${partial} (${index === parts.length - 1 ? "file" : "dir"})`;
        }),
      ].sort(),
    );

    // Modes: no setuid/setgid/sticky, and the umask applied.
    expect(await modeOf(path.join(dest, "setuid-root"))).toBe(0o755);
    expect(await modeOf(path.join(dest, "setgid"))).toBe(0o755);
    expect(await modeOf(path.join(dest, "world-writable"))).toBe(0o755);
    expect(await modeOf(path.join(dest, "sticky"))).toBe(0o755);
    expect(await modeOf(path.join(dest, "read-only"))).toBe(0o555);
    expect(await modeOf(path.join(dest, "read-only/inside"))).toBe(0o444);
    expect(await modeOf(path.join(dest, LONG_NAME))).toBe(0o600);
    // Owned by whoever extracts, whatever the archive says.
    expect((await lstat(path.join(dest, "setuid-root"))).uid).toBe(process.getuid?.());

    // Links stay links; the only hard link accepted shares the inode of a file from this archive.
    expect(await readlink(path.join(dest, "dangling"))).toBe("/nonexistent/target");
    expect(await readlink(path.join(dest, "pax-link"))).toBe("./setgid");
    expect((await lstat(path.join(dest, "hard-ok"))).ino).toBe((await lstat(path.join(dest, "setgid"))).ino);
    expect(await readFile(path.join(dest, "to-victim"), "utf8")).toBe("replaces the link, not the victim");
    expect(await readFile(path.join(dest, "pax/ünïcode name.txt"), "utf8")).toBe("pax path");
    expect(await readFile(path.join(dest, "ustar/prefix/name.txt"), "utf8")).toBe("prefixed");
    expect(await readFile(path.join(dest, LONG_NAME), "utf8")).toBe("long name");
    // mtimes come from the archive.
    expect((await stat(path.join(dest, "setgid"))).mtimeMs).toBe(1_700_000_000_000);

    expect(result.refused).toEqual(result.reported);
    expect(result.refused).toEqual([
      { path: "./char-device", reason: "device nodes are not extracted" },
      { path: "./block-device", reason: "device nodes are not extracted" },
      { path: "./fifo", reason: "FIFOs are not extracted" },
      { path: "../escape", reason: "paths with '..' are not extracted" },
      { path: "./sub/../../escape2", reason: "paths with '..' are not extracted" },
      { path: `${outside}/absolute`, reason: "absolute paths are not extracted" },
      { path: "./passwd", reason: "hard link to '/etc/passwd': absolute paths are not extracted" },
      { path: "./victim-link", reason: "hard link to '../victim': paths with '..' are not extracted" },
      {
        path: "./not-yet",
        reason: "hard link to 'later', which is not a file extracted earlier from this archive",
      },
      { path: "./etc/planted", reason: "its path goes through the symlink 'etc'" },
      { path: "./weird-type", reason: "unsupported entry type 'Z'" },
      { path: "../gnu-escape", reason: "paths with '..' are not extracted" },
      { path: "../pax-escape", reason: "paths with '..' are not extracted" },
    ]);
  });

  it("refuses a path through a symlink that was already in the destination", async () => {
    const outside = await temp.make("openshell-outside-");
    const dest = await temp.make();
    await symlink(outside, path.join(dest, "existing-link"));
    const archive = Buffer.concat([
      tarEntry({ name: "existing-link/file", type: "0", data: "x" }),
      tarEntry({ name: "existing-link/", type: "5" }),
      endOfArchive(),
    ]);

    const result = await extract(archive, dest);

    expect(await readdir(outside)).toEqual([]);
    expect(result.refused.map((entry) => entry.reason)).toEqual([
      "its path goes through the symlink 'existing-link'",
    ]);
    // A directory entry replaces the link itself (never what it points to).
    expect((await lstat(path.join(dest, "existing-link"))).isDirectory()).toBe(true);
  });

  it("refuses to replace a directory with a file or link, and a file on the path", async () => {
    const dest = await temp.make();
    const archive = Buffer.concat([
      tarEntry({ name: "dir/", type: "5" }),
      tarEntry({ name: "dir/kept", type: "0", data: "kept" }),
      tarEntry({ name: "dir", type: "0", data: "would delete a tree" }),
      tarEntry({ name: "dir", type: "2", linkname: "/" }),
      tarEntry({ name: "file", type: "0", data: "f" }),
      tarEntry({ name: "file/below", type: "0", data: "x" }),
      tarEntry({ name: ".", type: "0", data: "the destination itself" }),
      endOfArchive(),
    ]);

    const result = await extract(archive, dest);

    expect(await hashTree(dest)).toEqual({ "dir/kept": expect.any(String), file: expect.any(String) });
    expect(result.refused.map((entry) => `${entry.path}: ${entry.reason}`)).toEqual([
      "dir: a directory of that name is in the way",
      "dir: a directory of that name is in the way",
      "file/below: 'file' on its path is not a directory",
      ".: it names the destination directory itself",
    ]);
  });

  it("fails on a truncated archive, a bad checksum and an oversized long name", async () => {
    const dest = await temp.make();
    const whole = tarEntry({ name: "a", type: "0", data: "x".repeat(1000) });
    await expect(extractTarSafely(chunked(whole.subarray(0, 800)), { dest })).rejects.toThrow(/truncated/);
    await expect(extractTarSafely(chunked(whole), { dest })).rejects.toThrow(/end-of-archive marker/);
    const corrupt = Buffer.from(whole);
    corrupt[0] = "b".charCodeAt(0);
    await expect(
      extractTarSafely(chunked(Buffer.concat([corrupt, endOfArchive()])), { dest }),
    ).rejects.toThrow(/checksum/);
    const huge = tarEntry({ name: "././@LongLink", type: "L", data: "n", sizeOverride: 16 * 1024 * 1024 });
    await expect(extractTarSafely(chunked(huge), { dest })).rejects.toMatchObject({
      code: "internal",
      message: expect.stringContaining("GNU long name of 16777216 bytes"),
    });
  });
});

describe("extractTarSafely with archives from GNU tar", () => {
  const temp = tempDirs();
  afterEach(() => temp.cleanup());

  it.each(["gnu", "pax", "ustar"])(
    "round-trips long names, links and modes (--format=%s)",
    async (format) => {
      const source = await temp.make();
      const dest = await temp.make();
      const deep = format === "ustar" ? "u".repeat(90) : LONG_NAME;
      await mkdir(path.join(source, path.dirname(deep)), { recursive: true });
      await writeFile(path.join(source, deep), "deep");
      await writeFile(path.join(source, "exec.sh"), "#!/bin/sh\n");
      await chmod(path.join(source, "exec.sh"), 0o750);
      await writeFile(path.join(source, "big.bin"), Buffer.alloc(300_000, 7));
      await writeFile(path.join(source, "tab\tand\nnewline ✓"), "odd");
      await symlink("big.bin", path.join(source, "link"));
      execFileSync("ln", [path.join(source, "big.bin"), path.join(source, "hard.bin")]);
      const archive = execFileSync("tar", [`--format=${format}`, "-cf", "-", "-C", source, "."], {
        maxBuffer: 64 * 1024 * 1024,
      });

      const result = await extract(archive, dest);

      expect(result.refused).toEqual([]);
      expect(await hashTree(dest)).toEqual(await hashTree(source));
      expect(await modeOf(path.join(dest, "exec.sh"))).toBe(0o750 & ~process.umask());
      expect((await lstat(path.join(dest, "hard.bin"))).ino).toBe(
        (await lstat(path.join(dest, "big.bin"))).ino,
      );
    },
  );
});
