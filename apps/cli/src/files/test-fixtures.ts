// Helpers shared by the tests of this directory; not used by the CLI itself.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

/** Creates temp dirs and removes them all in `cleanup()` (call it from afterEach). */
export function tempDirs() {
  const created: string[] = [];
  return {
    async make(prefix = "openshell-files-"): Promise<string> {
      const dir = await mkdtemp(path.join(tmpdir(), prefix));
      created.push(dir);
      return dir;
    },
    async cleanup(): Promise<void> {
      await Promise.all(created.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
    },
  };
}

/** Writes `{ "relative/path": "content" }` under `root`, creating directories. */
export async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(root, relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** Every file under `root` mapped to its sha256 (symlinks to "-> target"); directories are left out. */
export async function hashTree(root: string): Promise<Record<string, string>> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const result: Record<string, string> = {};
  for (const entry of entries) {
    const absolute = path.join(entry.parentPath, entry.name);
    const relative = path.relative(root, absolute).split(path.sep).join("/");
    if (entry.isSymbolicLink()) result[relative] = `-> ${await readlink(absolute)}`;
    else if (entry.isFile())
      result[relative] = createHash("sha256")
        .update(await readFile(absolute))
        .digest("hex");
  }
  return result;
}

/** Runs git in `dir` with a throwaway identity, ignoring the user's and the system's git config. */
export function git(dir: string, ...args: string[]): string {
  return execFileSync(
    "git",
    ["-c", "user.email=test@example.com", "-c", "user.name=Test", "-c", "init.defaultBranch=main", ...args],
    {
      cwd: dir,
      encoding: "utf8",
      env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" },
    },
  );
}

export function hasGit(): boolean {
  try {
    execFileSync("git", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
