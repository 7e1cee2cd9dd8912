import {
  chmodSync,
  closeSync,
  constants,
  futimesSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  type Stats,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { readTarEntries, type TarEntry } from "./tar-reader.js";

/**
 * Extracts a tar stream from a sandbox into a host directory, treating every entry as hostile:
 *
 * - only regular files, directories and symlinks are written; device nodes, FIFOs, unknown types
 *   and hard links to anything but a file this archive already wrote are refused;
 * - modes are masked to 0777 (no setuid, setgid or sticky bit) and the user's umask; nothing is
 *   chowned;
 * - the destination itself is never touched (the archive's "./" entry is skipped), nor any
 *   directory that existed before;
 * - absolute names and names with ".." are refused, and so is every name whose path goes through a
 *   symlink (one the archive planted or one already there): each parent component is lstat-ed and
 *   must be a real directory, files are opened with O_EXCL|O_NOFOLLOW after removing what was there.
 *
 * Refused entries are reported through `onRefused` and skipped; the caller decides what that means
 * for its exit. Problems of the host (disk full, permissions) and a corrupt archive throw.
 */

export interface RefusedEntry {
  /** The entry's name as the archive gave it (hostile: escape it before printing). */
  path: string;
  reason: string;
}

export interface ExtractOptions {
  /** An existing directory. */
  dest: string;
  onRefused?: (refused: RefusedEntry) => void;
}

export interface ExtractSummary {
  /** Files, directories and links written. */
  written: number;
  refused: RefusedEntry[];
}

const OWNER_RWX = 0o700;
/** The largest mtime a classic 11-digit octal field holds; later ones (from base-256) are not set. */
const MAX_MTIME = 0o77777777777;
const PERMISSION_BITS = 0o777;
const CREATE_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

class Refusal extends Error {}

interface CreatedDirectory {
  absolute: string;
  /** The mode to leave it with: the entry's, masked. */
  mode: number;
  mtime: number | undefined;
}

export async function extractTarSafely(
  source: AsyncIterable<Uint8Array>,
  options: ExtractOptions,
): Promise<ExtractSummary> {
  // Read once; new files get it from the kernel, directories from finish().
  const extractor = new SafeExtractor(options.dest, process.umask());
  const refused: RefusedEntry[] = [];
  let written = 0;
  try {
    for await (const { entry, body } of readTarEntries(source)) {
      try {
        if (await extractor.write(entry, body)) written += 1;
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        const refusal = { path: entry.path, reason: error.message };
        refused.push(refusal);
        options.onRefused?.(refusal);
      }
    }
  } catch (error) {
    // Also after a failure no directory is left with the owner-only mode it was created with.
    try {
      extractor.finish();
    } catch {
      // The first error is the one to report.
    }
    throw error;
  }
  extractor.finish();
  return { written, refused };
}

/**
 * The file system calls are synchronous: entries are written one after the other anyway, and a
 * thread-pool round trip per call made many small files 2-3 times slower than GNU tar. Only the
 * archive is read asynchronously.
 */
class SafeExtractor {
  /** Directories this run created (their mode and time are set at the end), by relative path. */
  private readonly createdDirectories = new Map<string, CreatedDirectory>();
  /**
   * Absolute paths seen to be real directories (not symlinks) in this run. Nothing replaces a
   * directory once there (file and link entries refuse to), so they need no second lstat.
   */
  private readonly knownDirectories = new Set<string>();
  /** Regular files this run wrote: the only targets a hard link may name. */
  private readonly writtenFiles = new Set<string>();

  constructor(
    private readonly dest: string,
    private readonly umask: number,
  ) {}

  /** Writes one entry; false when there was nothing to write (the destination's own entry). */
  async write(entry: TarEntry, body: () => AsyncGenerator<Buffer>): Promise<boolean> {
    if (entry.undecodableName) throw new Refusal("its name is not valid UTF-8");
    const components = safeComponents(entry.path);
    if (components.length === 0) {
      if (entry.kind === "directory") return false; // "./": the destination keeps its own mode
      throw new Refusal("it names the destination directory itself");
    }
    switch (entry.kind) {
      case "directory":
        this.writeDirectory(components, entry);
        return true;
      case "file":
        await this.writeFile(components, entry, body);
        return true;
      case "symlink":
        this.writeSymlink(components, entry);
        return true;
      case "hardlink":
        this.writeHardLink(components, entry);
        return true;
      case "character-device":
      case "block-device":
        throw new Refusal("device nodes are not extracted");
      case "fifo":
        throw new Refusal("FIFOs are not extracted");
      default:
        throw new Refusal(`unsupported entry type '${printableTypeflag(entry.typeflag)}'`);
    }
  }

  /** Restores the modes and times of the directories this run created, deepest first. */
  finish(): void {
    const directories = [...this.createdDirectories.values()].sort(
      (a, b) => b.absolute.length - a.absolute.length,
    );
    for (const directory of directories) {
      // Directories are never replaced once created (see createReplacing), so this is still ours.
      if (!lstatOrUndefined(directory.absolute)?.isDirectory()) continue;
      chmodSync(directory.absolute, directory.mode);
      if (isSettableTime(directory.mtime)) utimesSync(directory.absolute, directory.mtime, directory.mtime);
    }
  }

  private writeDirectory(components: string[], entry: TarEntry): void {
    const parent = this.parentDirectory(components);
    const relative = components.join("/");
    const target = path.join(parent, components.at(-1)!);
    const existing = lstatOrUndefined(target);
    if (existing?.isDirectory()) {
      // One this run created takes the entry's mode and time; one that was there keeps its own.
      const created = this.createdDirectories.get(relative);
      if (created) {
        created.mode = this.umasked(entry.mode);
        created.mtime = entry.mtime;
      }
      return;
    }
    if (existing) this.remove(target, relative);
    this.makeDirectory(relative, target, entry.mode, entry.mtime);
  }

  private async writeFile(
    components: string[],
    entry: TarEntry,
    body: () => AsyncGenerator<Buffer>,
  ): Promise<void> {
    const target = path.join(this.parentDirectory(components), components.at(-1)!);
    const relative = components.join("/");
    // The kernel applies the umask to the mode; O_EXCL|O_NOFOLLOW never opens what was there.
    const fd = this.createReplacing(target, relative, () =>
      openSync(target, CREATE_FILE, entry.mode & PERMISSION_BITS),
    );
    try {
      for await (const chunk of body()) {
        let offset = 0;
        while (offset < chunk.length) offset += writeSync(fd, chunk, offset);
      }
      if (isSettableTime(entry.mtime)) futimesSync(fd, entry.mtime, entry.mtime);
    } finally {
      closeSync(fd);
    }
    this.writtenFiles.add(relative);
  }

  private writeSymlink(components: string[], entry: TarEntry): void {
    if (entry.linkpath === "") throw new Refusal("symlink without a target");
    if (entry.linkpath.includes("\0")) throw new Refusal("symlink target contains NUL");
    const target = path.join(this.parentDirectory(components), components.at(-1)!);
    // The link is written as it is; nothing later is written through it (see parentDirectory).
    this.createReplacing(target, components.join("/"), () => symlinkSync(entry.linkpath, target));
  }

  private writeHardLink(components: string[], entry: TarEntry): void {
    let linkComponents: string[];
    try {
      linkComponents = safeComponents(entry.linkpath);
    } catch (error) {
      throw new Refusal(`hard link to '${entry.linkpath}': ${(error as Error).message}`);
    }
    const linkRelative = linkComponents.join("/");
    if (!this.writtenFiles.has(linkRelative)) {
      throw new Refusal(
        `hard link to '${entry.linkpath}', which is not a file extracted earlier from this archive`,
      );
    }
    const existingTarget = path.join(this.parentDirectory(linkComponents), linkComponents.at(-1)!);
    if (!lstatOrUndefined(existingTarget)?.isFile()) {
      throw new Refusal(`hard link to '${entry.linkpath}', which is no longer a regular file`);
    }
    const relative = components.join("/");
    if (relative === linkRelative) return; // a link to itself: the file is there
    const target = path.join(this.parentDirectory(components), components.at(-1)!);
    // link(2) does not follow a symlink given as the existing path; it is a regular file anyway.
    this.createReplacing(target, relative, () => linkSync(existingTarget, target));
    this.writtenFiles.add(relative);
  }

  /**
   * Runs `create` (which fails with EEXIST when anything is at `target`); a non-directory in the way
   * is removed first, like tar does. A directory in the way is refused: replacing it would delete a
   * tree.
   */
  private createReplacing<T>(target: string, relative: string, create: () => T): T {
    try {
      return create();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (lstatOrUndefined(target)?.isDirectory()) throw new Refusal("a directory of that name is in the way");
    this.remove(target, relative);
    return create();
  }

  /**
   * The entry's parent as an absolute path, each component checked with lstat: a real directory, or
   * missing and then created. A symlink or a file on the way refuses the entry.
   */
  private parentDirectory(components: string[]): string {
    let current = this.dest;
    for (let index = 0; index < components.length - 1; index++) {
      current = path.join(current, components[index]!);
      if (this.knownDirectories.has(current)) continue;
      const stats = lstatOrUndefined(current);
      const shown = components.slice(0, index + 1).join("/");
      if (stats === undefined) {
        this.makeDirectory(shown, current, PERMISSION_BITS, undefined);
      } else if (stats.isSymbolicLink()) {
        throw new Refusal(`its path goes through the symlink '${shown}'`);
      } else if (!stats.isDirectory()) {
        throw new Refusal(`'${shown}' on its path is not a directory`);
      } else {
        this.knownDirectories.add(current);
      }
    }
    return current;
  }

  /**
   * Created owner-only (so nothing else can use it while the archive is written, and we can always
   * write into it); finish() gives it the entry's mode under the umask.
   */
  private makeDirectory(relative: string, absolute: string, mode: number, mtime: number | undefined): void {
    mkdirSync(absolute, OWNER_RWX);
    this.knownDirectories.add(absolute);
    this.createdDirectories.set(relative, { absolute, mode: this.umasked(mode), mtime });
  }

  private umasked(mode: number): number {
    return mode & PERMISSION_BITS & ~this.umask;
  }

  private remove(absolute: string, relative: string): void {
    unlinkSync(absolute);
    this.writtenFiles.delete(relative);
  }
}

/**
 * The entry's name as path components, "." and empty ones dropped. Absolute names and ".." are
 * refused outright (GNU tar strips a leading "/" instead; a sandbox has no business sending one).
 */
function safeComponents(name: string): string[] {
  if (name.includes("\0")) throw new Refusal("its name contains NUL");
  if (name.startsWith("/")) throw new Refusal("absolute paths are not extracted");
  const components = name.split("/").filter((component) => component !== "" && component !== ".");
  if (components.includes("..")) throw new Refusal("paths with '..' are not extracted");
  return components;
}

function isSettableTime(mtime: number | undefined): mtime is number {
  return mtime !== undefined && Number.isFinite(mtime) && mtime >= 0 && mtime <= MAX_MTIME;
}

function printableTypeflag(typeflag: string): string {
  const code = typeflag.charCodeAt(0);
  return code >= 0x21 && code < 0x7f ? typeflag : `\\x${code.toString(16).padStart(2, "0")}`;
}

function lstatOrUndefined(file: string): Stats | undefined {
  return lstatSync(file, { throwIfNoEntry: false });
}
