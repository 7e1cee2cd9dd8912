import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdir, stat } from "node:fs/promises";
import path from "node:path";
import { OpenShellError } from "@openshell/core";
import { describeExit, type ProcessOutcome, pipeProcesses, succeeded, watchProcess } from "./process-pipe.js";
import { type ExtractSummary, extractTarSafely, type RefusedEntry } from "./safe-extract.js";
import { shellQuote } from "./shell-quote.js";
import { listUploadFiles } from "./upload-file-list.js";

/** Starts `remoteCommand` in the sandbox with piped stdio; in production `ssh ... sandbox <command>`. */
export type RemoteCommandRunner = (remoteCommand: string) => ChildProcess;

const DEFAULT_UPLOAD_DEST = "/sandbox";
const DEFAULT_DOWNLOAD_DEST = ".";

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
  /** Called for each archive entry that is not written (its name is sandbox-controlled). */
  onRefused?: (refused: RefusedEntry) => void;
}

export interface DownloadSummary {
  /** Archive bytes received from the sandbox. */
  bytes: number;
}

function remoteUploadCommand(dest: string): string {
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

/**
 * `sandbox download`: a directory's contents land in `dest`, a file in `dest/<name>`. The archive is
 * extracted by our own extractor (safe-extract.ts), never by the host's tar: the sandbox controls
 * the stream completely. Refused entries are reported through `onRefused` as they come and make
 * the download fail at the end, after everything else was written.
 */
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
  const remoteDone = watchProcess(remote);

  let bytes = 0;
  let outputEnded = false;
  let extracted: ExtractSummary | undefined;
  let extractError: unknown;
  let killedByUs = false;
  try {
    if (!remote.stdout) throw new OpenShellError("internal", "the remote command has no stdout");
    remote.stdout.once("end", () => (outputEnded = true));
    const archive = countBytes(remote.stdout, (count) => (bytes += count));
    extracted = await extractTarSafely(archive, { dest, onRefused: options.onRefused });
  } catch (error) {
    extractError = error;
    // Stopped reading mid-stream: the remote side would block on a full pipe. One whose output
    // ended is left to exit and tell its own story.
    if (!outputEnded && remote.exitCode === null && remote.signalCode === null) {
      killedByUs = true;
      remote.kill();
    }
  }
  const remoteOutcome = await remoteDone;
  throwIfSpawnFailed(remoteOutcome, "remote command");
  if (remoteOutcome.code === REMOTE_NOT_FOUND_EXIT) {
    throw new OpenShellError("not_found", `'${sandboxPath}' does not exist in sandbox`);
  }
  // A remote side that failed explains a broken archive better than the archive does.
  if (!succeeded(remoteOutcome) && !killedByUs) {
    throw transferError("download", "remote command", remoteOutcome);
  }
  if (extractError !== undefined) throw extractionError(extractError, dest);
  const refused = extracted?.refused ?? [];
  if (refused.length > 0) {
    throw new OpenShellError(
      "permission_denied",
      `download incomplete: ${refused.length} ${refused.length === 1 ? "entry" : "entries"} from the sandbox ${refused.length === 1 ? "was" : "were"} refused and skipped (listed above); everything else is in '${dest}'`,
    );
  }
  return { bytes };
}

async function* countBytes(
  source: AsyncIterable<Buffer>,
  onBytes: (count: number) => void,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    onBytes(chunk.length);
    yield chunk;
  }
}

/** A corrupt archive keeps its code; the host's own failures (disk full, permissions) say where. */
function extractionError(error: unknown, dest: string): OpenShellError {
  if (error instanceof OpenShellError) {
    return new OpenShellError(error.code, `download failed: ${error.message}`, { cause: error });
  }
  return new OpenShellError(
    "failed_precondition",
    `download failed: could not write into '${dest}': ${(error as Error).message}`,
    { cause: error },
  );
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
