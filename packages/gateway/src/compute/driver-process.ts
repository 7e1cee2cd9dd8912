import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Backoff, type Logger, OpenShellError, sleep } from "@openshell/core";
import {
  type ComputeDriverClient,
  connectToDriver,
  type DriverConnection,
  MAX_UNIX_SOCKET_PATH,
} from "@openshell/driver-sdk";
import type { compute } from "@openshell/proto";
import type { DriverCommand } from "./driver-binary.js";

export interface DriverProcessOptions {
  name: string;
  command: DriverCommand;
  /** Driver flags after --bind-socket/--state-dir/--log-level. */
  extraArgs: string[];
  stateDir: string;
  logLevel: string;
  logger: Logger;
  readyTimeoutMs: number;
  restartMaxBackoffMs: number;
  /** Called after every (re)start once the driver answers GetCapabilities. */
  onReady?: (capabilities: compute.GetCapabilitiesResponse) => void;
}

type State = "stopped" | "starting" | "ready" | "restarting";

/** A driver that stayed up this long counts as healthy: its next crash restarts it quickly again. */
const HEALTHY_UPTIME_MS = 60_000;

/**
 * One compute driver as a child process on a Unix socket. Starts it, waits until it answers
 * GetCapabilities, restarts it with backoff when it crashes, and stops it (stdin closed, then SIGTERM,
 * then SIGKILL). The driver exits by itself when the gateway dies, because its stdin pipe closes.
 */
/**
 * How long a driver gets to stop its workloads cleanly before SIGKILL: the VM driver's worst case
 * is 5 s power button + 12 s shutdown + 5 s SIGTERM + 2 s after SIGKILL (its STOP_TIMINGS), all VMs
 * at once; a driver killed mid-stop leaves VMs to be adopted instead of shut down.
 */
const DRIVER_STOP_GRACE_MS = 30_000;

export class DriverProcess {
  readonly socketPath: string;
  private child: ChildProcess | undefined;
  private connection: DriverConnection | undefined;
  private state: State = "stopped";
  private capabilities: compute.GetCapabilitiesResponse | undefined;
  private readonly backoff: Backoff;
  private readyWaiters: (() => void)[] = [];
  private startedAt = 0;
  private stopping = false;

  constructor(private readonly options: DriverProcessOptions) {
    this.socketPath = driverSocketPath(options.stateDir, options.name);
    this.backoff = new Backoff(500, options.restartMaxBackoffMs);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isReady(): boolean {
    return this.state === "ready";
  }

  get driverCapabilities(): compute.GetCapabilitiesResponse | undefined {
    return this.capabilities;
  }

  async start(): Promise<compute.GetCapabilitiesResponse> {
    mkdirSync(this.options.stateDir, { recursive: true });
    this.state = "starting";
    return this.spawnAndWait();
  }

  /** The client of the running driver; waits up to `timeoutMs` while it (re)starts. */
  async client(timeoutMs = this.options.readyTimeoutMs): Promise<ComputeDriverClient> {
    if (this.state === "ready" && this.connection) return this.connection.client;
    if (this.state === "stopped" || this.stopping) {
      throw new OpenShellError("unavailable", `compute driver '${this.options.name}' is not running`);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.readyWaiters.push(done);
    });
    if (this.state === "ready" && this.connection) return this.connection.client;
    throw new OpenShellError(
      "unavailable",
      `compute driver '${this.options.name}' is restarting after a crash; retry in a few seconds (gateway log has the driver's exit status)`,
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.state = "stopped";
    this.connection?.close();
    this.connection = undefined;
    this.wakeWaiters();
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // Only SIGTERM: a driver that saw its stdin close would take it for a crashed gateway and leave
    // its workloads running for adoption, while a clean stop must shut them down. stdin closes
    // by itself when this process exits.
    child.kill("SIGTERM");
    const killTimer = setTimeout(() => child.kill("SIGKILL"), DRIVER_STOP_GRACE_MS);
    await exited;
    clearTimeout(killTimer);
  }

  private async spawnAndWait(): Promise<compute.GetCapabilitiesResponse> {
    const { command, logger, name } = this.options;
    const args = [
      ...command.prefixArgs,
      "--bind-socket",
      this.socketPath,
      "--state-dir",
      this.options.stateDir,
      "--log-level",
      this.options.logLevel,
      ...this.options.extraArgs,
    ];
    logger.info({ driver: name, command: command.file, args }, "starting compute driver");
    const child = spawn(command.file, args, { stdio: ["pipe", "inherit", "inherit"] });
    this.child = child;
    this.startedAt = Date.now();
    let exitStatus: string | undefined;
    child.once("exit", (code, signal) => {
      exitStatus = signal ? `signal ${signal}` : `exit code ${code}`;
      this.onExit(child, exitStatus);
    });
    child.once("error", (error) => {
      exitStatus = error.message;
    });

    const deadline = Date.now() + this.options.readyTimeoutMs;
    let lastError = "socket not created yet";
    while (Date.now() < deadline) {
      if (exitStatus !== undefined) {
        throw new OpenShellError(
          "unavailable",
          `${name} compute driver exited before becoming ready with status ${exitStatus}; see its log lines above`,
        );
      }
      const connection = connectToDriver(this.socketPath);
      try {
        const capabilities = await connection.client.getCapabilities({}, { timeoutMs: 1_000 });
        this.connection = connection;
        this.capabilities = capabilities;
        this.state = "ready";
        logger.info(
          {
            driver: name,
            pid: child.pid,
            driverName: capabilities.driverName,
            defaultImage: capabilities.defaultImage,
          },
          "compute driver ready",
        );
        this.wakeWaiters();
        this.options.onReady?.(capabilities);
        return capabilities;
      } catch (error) {
        connection.close();
        lastError = error instanceof Error ? error.message : String(error);
        await sleep(100);
      }
    }
    child.kill("SIGKILL");
    throw new OpenShellError(
      "unavailable",
      `timed out waiting for ${name} compute driver socket '${this.socketPath}': ${lastError}`,
    );
  }

  private onExit(child: ChildProcess, status: string): void {
    if (this.child !== child) return;
    this.connection?.close();
    this.connection = undefined;
    if (this.stopping) return;
    const wasReady = this.state === "ready";
    this.state = "restarting";
    if (Date.now() - this.startedAt > HEALTHY_UPTIME_MS) this.backoff.reset();
    const delay = this.backoff.next();
    this.options.logger.warn(
      { driver: this.options.name, pid: child.pid, status, restartInMs: delay },
      wasReady ? "compute driver crashed; restarting it" : "compute driver exited; restarting it",
    );
    void this.restartAfter(delay);
  }

  private async restartAfter(delayMs: number): Promise<void> {
    await sleep(delayMs);
    if (this.stopping) return;
    try {
      await this.spawnAndWait();
    } catch (error) {
      this.options.logger.error({ driver: this.options.name, err: error }, "compute driver restart failed");
      // onExit of the failed child schedules the next attempt; a child that never exited is killed above.
    }
  }

  private wakeWaiters(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * `<state-dir>/compute-driver.sock` when it fits the 108-byte sun_path limit, otherwise a short path
 * under the temp dir derived from the state dir (stable across restarts).
 */
function driverSocketPath(stateDir: string, name: string): string {
  const preferred = join(stateDir, "compute-driver.sock");
  if (Buffer.byteLength(preferred) <= MAX_UNIX_SOCKET_PATH) return preferred;
  const hash = createHash("sha256").update(stateDir).digest("hex").slice(0, 12);
  return join(tmpdir(), `openshell-${hash}`, `${name}.sock`);
}
