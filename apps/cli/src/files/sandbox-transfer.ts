import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdir, stat } from "node:fs/promises";
import path from "node:path";
import { OpenShellError } from "@openshell/core";
import { describeExit, type ProcessOutcome, pipeProcesses, succeeded } from "./process-pipe.js";
import { shellQuote } from "./shell-quote.js";
import { listUploadFiles } from "./upload-file-list.js";

/** Starts `remoteCommand` in the sandbox with piped stdio; in production `ssh ... sandbox <command>`. */
export type RemoteCommandRunner = (remoteCommand: string) => ChildProcess;

export const DEFAULT_UPLOAD_DEST = "/sandbox";
export const DEFAULT_DOWNLOAD_DEST = ".";

/** The remote download command exits with this when the path is missing (tar never does). */
const REMOTE_NOT_FOUND_EXIT = 44;
/** OpenSSH's exit status for its own failures (connection, authentication). */
const SSH_FAILURE_EXIT = 255;

export interface UploadOptions {
  localPath: string;
  /** Directory in the sandbox; created if missing. */
  dest?: string;
  gitIgnore: boolean;
  runRemote: RemoteCommandRunner;
}

export interface UploadSummary {
  files: number;
  /** Sum of the regular files' sizes. */
  bytes: number;
}

export interface DownloadOptions {
  sandboxPath: string;
  /** Local directory; created if missing. */
  dest?: string;
  runRemote: RemoteCommandRunner;
}

export interface DownloadSummary {
  /** Archive bytes received from the sandbox. */
  bytes: number;
}

export function remoteUploadCommand(dest: string): string {
  const quoted = shellQuote(dest);
  return `mkdir -p ${quoted} && tar -xf - -C ${quoted}`;
}

/** A directory sends its contents, anything else itself; a missing path exits 44 with a message. */
export function remoteDownloadCommand(sandboxPath: string): string {
  const target = shellQuote(sandboxPath);
  const parent = shellQuote(path.posix.dirname(sandboxPath));
  // "./" keeps a name that starts with "-" from reading as a tar option.
  const name = shellQuote(`./${path.posix.basename(sandboxPath)}`);
  const missing = shellQuote(`no such file or directory: ${sandboxPath}`);
  return [
    `{ [ -e ${target} ] || [ -L ${target} ]; } || { printf '%s\\n' ${missing} >&2; exit ${REMOTE_NOT_FOUND_EXIT}; }`,
    `if [ -d ${target} ]; then tar -cf - -C ${target} .; else tar -cf - -C ${parent} ${name}; fi`,
  ].join("; ");
}

/**
 * `sandbox upload`: a directory's contents land in `dest`, a file in `dest/<name>`. The file list
 * goes to the local tar NUL-separated, so any name survives.
 */
export async function uploadToSandbox(options: UploadOptions): Promise<UploadSummary> {
  const dest = options.dest || DEFAULT_UPLOAD_DEST;
  const { baseDir, files } = await listUploadFiles(options.localPath, { gitIgnore: options.gitIgnore });
  const singleFile = !(await stat(options.localPath)).isDirectory();
  const bytes = await sumFileSizes(baseDir, files, singleFile);

  // -h: a single named file is sent as its content even when it is a symlink. "./" keeps names that
  // start with "-" from reading as options.
  const localTar = spawnLocalTar([
    "-c",
    "-f",
    "-",
    ...(singleFile ? ["-h"] : []),
    "-C",
    baseDir,
    "--no-recursion",
    "--null",
    "-T",
    "-",
  ]);
  localTar.stdin?.on("error", () => {}); // a tar that died early is reported by its exit status
  localTar.stdin?.end(Buffer.from(files.map((file) => `./${file}\0`).join("")));
  const remote = options.runRemote(remoteUploadCommand(dest));

  const { producer: local, consumer: remoteOutcome } = await pipeProcesses(localTar, remote);
  throwIfSpawnFailed(local, "local tar");
  throwIfSpawnFailed(remoteOutcome, "remote command");
  if (!succeeded(remoteOutcome)) throw transferError("upload", "remote command", remoteOutcome);
  // The producer may die of SIGPIPE after the remote side has read the whole archive and left.
  if (!succeeded(local) && !local.killedByUs && local.signal !== "SIGPIPE") {
    throw transferError("upload", "local tar", local);
  }
  return { files: files.length, bytes };
}

/** `sandbox download`: a directory's contents land in `dest`, a file in `dest/<name>`. */
export async function downloadFromSandbox(options: DownloadOptions): Promise<DownloadSummary> {
  const { sandboxPath } = options;
  if (sandboxPath === "") throw new OpenShellError("invalid_argument", "sandbox path must not be empty");
  const dest = path.resolve(options.dest || DEFAULT_DOWNLOAD_DEST);
  await mkdir(dest, { recursive: true }).catch((error: unknown) => {
    throw new OpenShellError("failed_precondition", `cannot use '${dest}' as the destination directory`, {
      cause: error,
    });
  });

  const remote = options.runRemote(remoteDownloadCommand(sandboxPath));
  remote.stdin?.on("error", () => {});
  remote.stdin?.end();
  const localTar = spawnLocalTar(["-x", "-f", "-", "--no-same-owner", "-C", dest]);

  let bytes = 0;
  const outcomes = await pipeProcesses(remote, localTar, (chunk) => {
    bytes += chunk.length;
  });
  const { producer: remoteOutcome, consumer: local } = outcomes;
  throwIfSpawnFailed(remoteOutcome, "remote command");
  throwIfSpawnFailed(local, "local tar");
  if (remoteOutcome.code === REMOTE_NOT_FOUND_EXIT) {
    throw new OpenShellError("not_found", `'${sandboxPath}' does not exist in sandbox`);
  }
  if (!succeeded(remoteOutcome) && !remoteOutcome.killedByUs) {
    throw transferError("download", "remote command", remoteOutcome);
  }
  if (!succeeded(local)) throw transferError("download", "local tar", local);
  return { bytes };
}

function spawnLocalTar(args: string[]): ChildProcess {
  // COPYFILE_DISABLE keeps macOS bsdtar from adding "._" AppleDouble files to the archive.
  return spawn("tar", args, { stdio: "pipe", env: { ...process.env, COPYFILE_DISABLE: "1" } });
}

async function sumFileSizes(baseDir: string, files: string[], followSymlinks: boolean): Promise<number> {
  const sizes = await Promise.all(
    files.map(async (file) => {
      const stats = await (followSymlinks ? stat : lstat)(path.join(baseDir, file));
      return stats.isFile() ? stats.size : 0;
    }),
  );
  return sizes.reduce((total, size) => total + size, 0);
}

function throwIfSpawnFailed(outcome: ProcessOutcome, what: string): void {
  if (outcome.spawnError) {
    throw new OpenShellError(
      "failed_precondition",
      `could not start ${what}: ${outcome.spawnError.message}`,
      {
        cause: outcome.spawnError,
      },
    );
  }
}

function transferError(
  direction: "upload" | "download",
  what: string,
  outcome: ProcessOutcome,
): OpenShellError {
  const code = outcome.code === SSH_FAILURE_EXIT ? "unavailable" : "internal";
  const detail = outcome.stderr ? `:\n${outcome.stderr}` : "";
  return new OpenShellError(
    code,
    `${direction} failed: ${what} ended with ${describeExit(outcome)}${detail}`,
  );
}
