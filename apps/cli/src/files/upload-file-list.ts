import { lstat, stat } from "node:fs/promises";
import path from "node:path";
import { OpenShellError } from "@openshell/core";
import { gitListFiles, isInsideGitWorkTree } from "./git-file-list.js";
import { walkFiles } from "./gitignore-walk.js";

export interface UploadFileList {
  /** The directory the archive is made from. */
  baseDir: string;
  /** `/`-separated paths relative to `baseDir`: regular files and symlinks only. */
  files: string[];
}

/**
 * What `sandbox upload` sends. A file is sent on its own (even when ignored: it was named); a
 * directory's files are listed through git when it is in a work tree, else by walking it with its
 * `.gitignore` files; `gitIgnore: false` sends everything but `.git`.
 */
export async function listUploadFiles(
  localPath: string,
  options: { gitIgnore: boolean },
): Promise<UploadFileList> {
  const absolute = path.resolve(localPath);
  const stats = await stat(absolute).catch(() => undefined);
  if (!stats) throw new OpenShellError("not_found", `local path '${localPath}' does not exist`);
  if (!stats.isDirectory()) return { baseDir: path.dirname(absolute), files: [path.basename(absolute)] };
  if (options.gitIgnore && (await isInsideGitWorkTree(absolute))) {
    const listed = await gitListFiles(absolute);
    if (listed) return { baseDir: absolute, files: await expandGitEntries(absolute, listed) };
  }
  return { baseDir: absolute, files: await walkFiles(absolute, options) };
}

/**
 * Drops entries deleted from the work tree and replaces directories (nested repositories and
 * submodules, which git lists as one entry) with their files.
 */
async function expandGitEntries(baseDir: string, entries: string[]): Promise<string[]> {
  const expanded = await Promise.all(
    entries.map(async (entry): Promise<string[]> => {
      const stats = await lstat(path.join(baseDir, entry)).catch(() => undefined);
      if (!stats) return [];
      if (stats.isFile() || stats.isSymbolicLink()) return [entry];
      if (!stats.isDirectory()) return [];
      const inner = await walkFiles(path.join(baseDir, entry), { gitIgnore: true });
      return inner.map((file) => `${entry}/${file}`);
    }),
  );
  return expanded.flat().sort();
}
