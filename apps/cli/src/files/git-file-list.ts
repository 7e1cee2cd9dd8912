import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Large repositories list many megabytes of paths. */
const GIT_MAX_BUFFER = 512 * 1024 * 1024;

async function runGit(dir: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync("git", ["-C", dir, ...args], {
      encoding: "utf8",
      maxBuffer: GIT_MAX_BUFFER,
    });
    return stdout;
  } catch {
    return undefined; // git missing, not a repository, or refused (e.g. an unsafe directory)
  }
}

/** True when `dir` is inside a git work tree and a working `git` is on PATH. */
export async function isInsideGitWorkTree(dir: string): Promise<boolean> {
  return (await runGit(dir, ["rev-parse", "--is-inside-work-tree"]))?.trim() === "true";
}

/**
 * The tracked and untracked-but-not-ignored paths under `dir`, relative to it, as git reports them.
 * Nested repositories and submodules appear as one entry (a directory); the caller expands them.
 */
export async function gitListFiles(dir: string): Promise<string[] | undefined> {
  const output = await runGit(dir, ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
  if (output === undefined) return undefined;
  const paths = output.split("\0").filter((entry) => entry !== "");
  return [...new Set(paths.map((entry) => entry.replace(/\/+$/, "")))];
}
