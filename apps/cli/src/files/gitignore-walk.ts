import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import ignore, { type Ignore } from "ignore";

/**
 * Rewrites one line of the `.gitignore` in directory `dir` (relative to the walk root, "" for the
 * root) so that it means the same thing in a single rule set rooted at the walk root. One rule set,
 * with deeper files' rules added later, keeps git's "last matching rule wins" across nested files.
 * Returns undefined for blank lines and comments.
 */
export function scopeGitignoreLine(line: string, dir: string): string | undefined {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  if (text.trim() === "" || text.startsWith("#")) return undefined;
  if (dir === "") return text;
  const negated = text.startsWith("!");
  const pattern = negated ? text.slice(1) : text;
  if (pattern.trim() === "") return undefined;
  // A slash at the start or in the middle anchors the pattern to its directory; otherwise it
  // matches at any depth below it. A trailing slash only means "directories only".
  const anchored = pattern.trimEnd().replace(/\/+$/, "").includes("/");
  const scoped = anchored ? `${dir}/${pattern.replace(/^\/+/, "")}` : `${dir}/**/${pattern}`;
  return negated ? `!${scoped}` : scoped;
}

/**
 * Lists the regular files and symlinks under `root` (paths relative to it, `/`-separated), leaving out
 * every `.git` entry and, when `gitIgnore` is set, whatever the `.gitignore` files found on the way
 * exclude. Ignored directories are not entered, as in git.
 */
export async function walkFiles(root: string, options: { gitIgnore: boolean }): Promise<string[]> {
  // git compares case-insensitively where the file system usually is (macOS, Windows).
  const rules = ignore({ ignorecase: process.platform === "darwin" || process.platform === "win32" });
  const files: string[] = [];
  await walkDirectory(root, "", options.gitIgnore ? rules : undefined, files);
  return files.sort();
}

async function walkDirectory(root: string, dir: string, rules: Ignore | undefined, files: string[]) {
  const absolute = path.join(root, dir);
  if (rules) await addGitignoreRules(rules, absolute, dir);
  const entries = await readdir(absolute, { withFileTypes: true });
  for (const entry of entries) {
    if (entry.name === ".git") continue;
    const relative = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!rules?.ignores(`${relative}/`)) await walkDirectory(root, relative, rules, files);
    } else if (entry.isFile() || entry.isSymbolicLink()) {
      if (!rules?.ignores(relative)) files.push(relative);
    }
  }
}

async function addGitignoreRules(rules: Ignore, absoluteDir: string, dir: string) {
  let content: string;
  try {
    content = await readFile(path.join(absoluteDir, ".gitignore"), "utf8");
  } catch {
    return; // no .gitignore here (or an unreadable one, which git would also skip)
  }
  const lines = content.split("\n").map((line) => scopeGitignoreLine(line, dir));
  rules.add(lines.filter((line): line is string => line !== undefined));
}
