/**
 * A private Docker daemon for tests, isolated from any system dockerd:
 *
 * - its own API socket `unix://<runDir>/docker.sock`, `--pidfile`, `--exec-root <runDir>/exec`
 *   (short: containerd sockets live below it), `--config-file` (its own daemon.json, empty but for
 *   the `runtimes` asked for, so /etc/docker/daemon.json does not apply) and `--containerd-namespace`,
 *   in case it shares a system containerd;
 * - `--bridge none`: no default `bridge` network and no docker0 that could clash with a system
 *   daemon's. Containers that publish ports need a user-defined network (`docker network create`),
 *   whose subnets come from `--default-address-pool 10.213.0.0/16` (/24 each);
 * - a persistent `--data-root /var/lib/openshell-test-docker`: images (the gateway image, its
 *   base) stay cached between test runs. One daemon per data root at a time; delete the directory
 *   (with no daemon running) to start from scratch.
 *
 * `stop()` sends SIGTERM to the dockerd this harness started and waits for it to exit (60 s, then
 * SIGKILL), then SIGKILLs what a runtime left behind naming its exec root (nothing else);
 * `restart()` starts it again with the same settings, e.g. to check that `--restart
 * unless-stopped` containers come back. Needs root and `dockerd` (apt-get install docker.io;
 * scripts/setup.sh installs it).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import { delimiter, join } from "node:path";
import { pidsOf } from "./process.js";

export const DEFAULT_DATA_ROOT = "/var/lib/openshell-test-docker";
export const DEFAULT_RUN_DIR = "/run/openshell-test-docker";
export const DEFAULT_ADDRESS_POOL = "base=10.213.0.0/16,size=24";

export interface DockerDaemonOptions {
  /** Socket, pidfile, exec root, config and log (default /run/openshell-test-docker). */
  runDir?: string;
  /** Images, containers, volumes; persistent (default /var/lib/openshell-test-docker). */
  dataRoot?: string;
  /** `--default-address-pool` for user-defined networks. */
  addressPool?: string;
  /** How long to wait for GET /_ping to answer (default 30 s). */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (default 60 s). */
  stopTimeoutMs?: number;
  /** OCI runtimes besides runc, as daemon.json's "runtimes" (e.g. `{ runsc: { path: "/usr/bin/runsc" } }`). */
  runtimes?: Record<string, { path: string; runtimeArgs?: string[] }>;
}

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface DockerRunOptions {
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Resolve with the non-zero exit code instead of throwing. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

export interface DockerDaemon {
  /** `unix://<runDir>/docker.sock`, for DOCKER_HOST / `docker -H`. */
  readonly host: string;
  readonly socketPath: string;
  /** PID of the running dockerd (changes on restart()). */
  readonly pid: number;
  readonly dataRoot: string;
  readonly logFile: string;
  /** The last `bytes` of the daemon's log. */
  logTail(bytes?: number): string;
  /** Runs the docker CLI against this daemon; throws on a non-zero exit unless allowFailure. */
  docker(args: string[], options?: DockerRunOptions): Promise<DockerResult>;
  /** Force-removes every container, then every volume, that `filter` (`docker ps --filter`) matches. */
  removeMatching(filter: string): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Starts a private dockerd and resolves once its API answers. */
export async function startDockerDaemon(options: DockerDaemonOptions = {}): Promise<DockerDaemon> {
  const runDir = options.runDir ?? DEFAULT_RUN_DIR;
  const dataRoot = options.dataRoot ?? DEFAULT_DATA_ROOT;
  const socketPath = join(runDir, "docker.sock");
  const pidFile = join(runDir, "dockerd.pid");
  const logFile = join(runDir, "dockerd.log");
  const configFile = join(runDir, "daemon.json");
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 60_000;
  const env = { ...process.env, PATH: `${process.env.PATH ?? ""}${delimiter}${SYSTEM_PATH}` };
  const dockerd = findExecutable("dockerd", env.PATH);
  if (!dockerd) {
    throw new Error(
      "dockerd not found: install Docker's daemon with `apt-get install docker.io` (bash scripts/setup.sh installs it)",
    );
  }
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new Error("a private dockerd needs root");
  }
  const args = [
    "--host",
    `unix://${socketPath}`,
    "--pidfile",
    pidFile,
    "--exec-root",
    join(runDir, "exec"),
    "--data-root",
    dataRoot,
    "--config-file",
    configFile,
    "--bridge",
    "none",
    "--default-address-pool",
    options.addressPool ?? DEFAULT_ADDRESS_POOL,
    "--containerd-namespace",
    "openshell-test",
    "--containerd-plugins-namespace",
    "openshell-test-plugins",
    "--cgroup-parent",
    "openshell-test-docker",
  ];

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const onProcessExit = () => {
    // The test process is going away without stop(): do not leave the daemon behind.
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };

  const logTail = (bytes = 6000): string => {
    try {
      const text = readFileSync(logFile, "utf8");
      return text.slice(-bytes);
    } catch {
      return "(no daemon log)";
    }
  };

  const start = async (): Promise<void> => {
    mkdirSync(runDir, { recursive: true, mode: 0o700 });
    mkdirSync(dataRoot, { recursive: true, mode: 0o710 });
    refuseLiveDaemon(pidFile, dataRoot);
    rmSync(socketPath, { force: true });
    writeFileSync(configFile, `${JSON.stringify(options.runtimes ? { runtimes: options.runtimes } : {})}\n`);
    const logFd = openSync(logFile, "a");
    writeFileSync(logFd, `\n--- ${new Date().toISOString()} ${dockerd} ${args.join(" ")}\n`);
    const logStart = statSync(logFile).size;
    try {
      child = spawn(dockerd, args, { stdio: ["ignore", logFd, logFd], env });
    } finally {
      closeSync(logFd);
    }
    const started = child;
    exited = new Promise((resolve) => {
      if (started.exitCode !== null || started.signalCode !== null) resolve();
      else started.once("exit", () => resolve());
    });
    let spawnError: Error | undefined;
    started.once("error", (error) => {
      spawnError = error;
    });
    process.once("exit", onProcessExit);
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (spawnError || started.exitCode !== null || started.signalCode !== null) {
        process.off("exit", onProcessExit);
        throw new Error(
          `dockerd exited before its API answered (${spawnError?.message ?? `exit ${started.exitCode ?? started.signalCode}`}); log ${logFile}:\n${readFrom(logFile, logStart)}`,
        );
      }
      if (await ping(socketPath)) return;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(
          `dockerd (pid ${started.pid}) did not answer GET /_ping on ${socketPath} within ${startTimeoutMs / 1000} s; log ${logFile}:\n${readFrom(logFile, logStart)}`,
        );
      }
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    const running = child;
    if (running && running.exitCode === null && running.signalCode === null) {
      running.kill("SIGTERM");
      if (!(await within(exited, stopTimeoutMs))) {
        running.kill("SIGKILL");
        await exited;
      }
    }
    process.off("exit", onProcessExit);
    // A runtime whose start failed can leave its shim and sandbox behind (Debian's runsc does):
    // with the daemon gone, whatever still names its exec root is such a leftover.
    for (const pid of pidsOf(/./, `${join(runDir, "exec")}/`)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(socketPath, { force: true });
    // dockerd leaves its host-network namespace bind-mounted below the exec root.
    const netns = join(runDir, "exec", "netns", "default");
    if (readFileSync("/proc/mounts", "utf8").includes(` ${netns} `)) {
      spawnSync("umount", ["-l", netns], { stdio: "ignore" });
    }
  };

  const docker = (dockerArgs: string[], runOptions: DockerRunOptions = {}): Promise<DockerResult> =>
    runDocker(dockerArgs, { ...runOptions, host: `unix://${socketPath}`, env });

  const lines = (text: string) => text.split("\n").filter(Boolean);
  const removeMatching = async (filter: string): Promise<void> => {
    const ids = lines((await docker(["ps", "-aq", "--filter", filter])).stdout);
    if (ids.length > 0) await docker(["rm", "-f", ...ids], { allowFailure: true });
    const volumes = lines((await docker(["volume", "ls", "-q", "--filter", filter])).stdout);
    if (volumes.length > 0) await docker(["volume", "rm", "-f", ...volumes], { allowFailure: true });
  };

  await start();
  return {
    host: `unix://${socketPath}`,
    socketPath,
    get pid() {
      return child?.pid ?? -1;
    },
    dataRoot,
    logFile,
    logTail,
    docker,
    removeMatching,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}

/** Runs the docker CLI against `host`. */
export function runDocker(
  args: string[],
  options: DockerRunOptions & { host: string; env?: NodeJS.ProcessEnv },
): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env), DOCKER_HOST: options.host };
    delete env.DOCKER_CONTEXT;
    const child = spawn("docker", args, { env, stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    const timer = options.timeoutMs
      ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs).unref()
      : undefined;
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run docker: ${error.message} (apt-get install docker.io)`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? 128,
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString(),
      };
      if (result.code !== 0 && !options.allowFailure) {
        reject(
          new Error(
            `docker ${args.join(" ")} failed (${signal ? `signal ${signal}` : `exit ${result.code}`}): ${result.stderr.trim() || result.stdout.trim()}`,
          ),
        );
      } else {
        resolve(result);
      }
    });
    child.stdin.on("error", () => {
      // the command exited without reading its input; its exit status tells the story
    });
    child.stdin.end(options.input);
  });
}

/** A dockerd from an earlier run still owning this run dir: refuse rather than share or kill it. */
function refuseLiveDaemon(pidFile: string, dataRoot: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0) return;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    rmSync(pidFile, { force: true }); // stale
    return;
  }
  if (cmdline.includes("dockerd")) {
    throw new Error(
      `a private test dockerd from an earlier run (pid ${pid}, pidfile ${pidFile}, data root ${dataRoot}) is still running; stop it first: kill ${pid}`,
    );
  }
  rmSync(pidFile, { force: true });
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) {
      resolve(false);
      return;
    }
    const req = http.request({ socketPath, path: "/_ping", method: "GET", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

function findExecutable(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? "").split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function readFrom(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString().slice(-8000);
  } catch {
    return "(no daemon log)";
  }
}

async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = await Promise.race([promise.then(() => true as const), timeout]);
  clearTimeout(timer);
  return done;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
