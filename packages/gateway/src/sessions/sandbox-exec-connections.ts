import type { Duplex } from "node:stream";
import { type Logger, OpenShellError } from "@openshell/core";
import { Client } from "ssh2";
import { type ExecOutput, type ExecRequest, runExecChannel } from "./ssh-exec-channel.js";

export interface ExecConnectionLimits {
  /** Exec channels on one SSH connection at a time (OpenSSH's MaxSessions default). */
  channelsPerConnection: number;
  /** SSH connections per sandbox; only one of them is ever in its handshake. */
  connectionsPerSandbox: number;
  /** Execs waiting for a free channel per sandbox; past it ExecSandbox answers RESOURCE_EXHAUSTED. */
  queuedPerSandbox: number;
  /** Relay + SSH handshake of one connection, and opening one channel on it. */
  handshakeTimeoutMs: number;
  /** A connection without channels for this long is closed. */
  idleCloseMs: number;
  /**
   * SSH keepalives notice a connection whose relay died without closing, well before a channel's
   * start deadline (`handshakeTimeoutMs`), so the execs waiting on it are retried.
   */
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
}

/**
 * Under TCG one SSH handshake in a sandbox VM takes seconds and many at once used to exceed a
 * 10 s deadline; with one handshake per sandbox in flight, 30 s is generous on any accelerator.
 */
const DEFAULT_EXEC_CONNECTION_LIMITS: ExecConnectionLimits = {
  channelsPerConnection: 10,
  connectionsPerSandbox: 3,
  queuedPerSandbox: 64,
  handshakeTimeoutMs: 30_000,
  idleCloseMs: 30_000,
  keepaliveIntervalMs: 5_000,
  keepaliveCountMax: 3,
};

export interface SandboxExecConnectionsDeps {
  /**
   * A byte stream to the sandbox's SSH server (a relay through its supervisor); rejects with an
   * OpenShellError (UNAVAILABLE when the sandbox is not reachable).
   */
  openTransport(sandboxId: string, signal: AbortSignal): Promise<Duplex>;
  /** Calls `listener` when a sandbox's supervisor session ends or is replaced; returns unsubscribe. */
  onSessionChange(listener: (sandboxId: string) => void): () => void;
  logger: Logger;
  limits?: Partial<ExecConnectionLimits>;
}

export interface SandboxExecSnapshot {
  /** Connections open or opening (retired ones still draining included). */
  connections: number;
  /** Channels running or reserved on those connections. */
  channels: number;
  queued: number;
}

type ConnectionState = "connecting" | "ready" | "retired" | "lost";

/** One SSH connection to a sandbox over one relay, carrying up to `channelsPerConnection` execs. */
class ExecConnection {
  state: ConnectionState = "connecting";
  /** Leases held: channels running plus slots reserved while the connection opens. */
  leases = 0;
  readonly client = new Client();
  readonly ready: Promise<void>;
  private transport: Duplex | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly opening = new AbortController();

  constructor(
    readonly sandboxId: string,
    private readonly limits: ExecConnectionLimits,
    private readonly deps: SandboxExecConnectionsDeps,
    private readonly onLost: (connection: ExecConnection) => void,
  ) {
    this.client.on("error", (error: Error) =>
      deps.logger.debug({ sandbox_id: sandboxId, err: error.message }, "exec SSH connection error"),
    );
    // A relay that ends (its supervisor died) leaves our end half-open: ssh2 would keep its
    // channels waiting forever, so the whole transport goes, which fails them.
    this.client.on("end", () => {
      this.markLost();
      this.transport?.destroy();
    });
    this.client.on("close", () => this.markLost());
    this.ready = this.open().catch((error: unknown) => {
      this.drop();
      throw error;
    });
    // Every lease awaits `ready`; a failure nobody waits for any more must not be unhandled.
    this.ready.catch(() => undefined);
  }

  get isLost(): boolean {
    return this.state === "lost";
  }

  /** Takes new channels: opening or open, not retired, not lost, below the cap. */
  get hasRoom(): boolean {
    return (
      (this.state === "connecting" || this.state === "ready") &&
      this.leases < this.limits.channelsPerConnection
    );
  }

  take(): void {
    this.leases++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  giveBack(): void {
    this.leases--;
    if (this.leases > 0) return;
    if (this.state === "retired") this.close();
    else if (this.state === "ready") {
      this.idleTimer = setTimeout(() => this.close(), this.limits.idleCloseMs);
      this.idleTimer.unref();
    }
  }

  /** No new channels; closes once the running ones are done. */
  retire(): void {
    if (this.state !== "connecting" && this.state !== "ready") return;
    this.state = "retired";
    if (this.leases === 0) this.close();
  }

  /** Tears the connection down at once (it stopped answering). */
  drop(): void {
    this.markLost();
    this.opening.abort();
    this.client.destroy();
    this.transport?.destroy();
  }

  private close(): void {
    clearTimeout(this.idleTimer);
    this.markLost();
    this.opening.abort();
    this.client.end();
    // end() sends a disconnect; the relay goes with it, or a moment later regardless.
    const transport = this.transport;
    if (transport) setTimeout(() => transport.destroy(), 1_000).unref();
  }

  private markLost(): void {
    if (this.state === "lost") return;
    this.state = "lost";
    clearTimeout(this.idleTimer);
    this.onLost(this);
  }

  private async open(): Promise<void> {
    const started = Date.now();
    const transport = await this.deps.openTransport(this.sandboxId, this.opening.signal);
    this.transport = transport;
    if (this.isLost) {
      transport.destroy();
      throw new OpenShellError("unavailable", "the exec connection was closed while it opened");
    }
    transport.once("close", () => this.client.destroy());
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new OpenShellError(
            "deadline_exceeded",
            `the SSH handshake with sandbox ${this.sandboxId} took longer than ${this.limits.handshakeTimeoutMs / 1000} s (the sandbox may be overloaded); retry the command`,
          ),
        );
        this.drop();
      }, this.limits.handshakeTimeoutMs);
      const fail = (error: OpenShellError) => {
        clearTimeout(timer);
        reject(error);
      };
      this.client.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.once("error", (error: Error) =>
        fail(
          new OpenShellError("unavailable", `SSH to the sandbox failed: ${error.message}`, { cause: error }),
        ),
      );
      this.client.once("close", () =>
        fail(new OpenShellError("unavailable", "the sandbox closed the SSH connection during the handshake")),
      );
      this.client.connect({
        sock: transport,
        username: "sandbox",
        // Our own timer above gives the error its code; 0 turns ssh2's off.
        readyTimeout: 0,
        // The relay reached this sandbox's own supervisor: the gateway authenticated both ends.
        hostVerifier: () => true,
        keepaliveInterval: this.limits.keepaliveIntervalMs,
        keepaliveCountMax: this.limits.keepaliveCountMax,
      });
    });
    if (this.state === "connecting") this.state = "ready";
    this.deps.logger.debug(
      { sandbox_id: this.sandboxId, handshake_ms: Date.now() - started },
      "exec SSH connection ready",
    );
  }
}

interface Waiter {
  admit(connection: ExecConnection): void;
  fail(error: Error): void;
}

interface SandboxPool {
  connections: Set<ExecConnection>;
  queue: Waiter[];
}

/**
 * ExecSandbox's SSH connections, per sandbox: opened lazily over one relay each, exec channels
 * multiplexed on them (a new SSH handshake per exec was 14× slower under TCG and failed under
 * load), a second and third connection only when the first is full and never two handshakes at
 * once, a bounded queue beyond that, idle connections closed, and connections retired when the
 * sandbox's supervisor session ends or is replaced. An exec whose connection died before the
 * command started is retried once on a fresh connection; one that had started reports the loss.
 */
export class SandboxExecConnections {
  private readonly pools = new Map<string, SandboxPool>();
  private readonly limits: ExecConnectionLimits;
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: SandboxExecConnectionsDeps) {
    this.limits = { ...DEFAULT_EXEC_CONNECTION_LIMITS, ...deps.limits };
    this.unsubscribe = deps.onSessionChange((sandboxId) => this.retireSandbox(sandboxId));
  }

  /** Runs `request` on one of the sandbox's exec connections and streams its output. */
  async *exec(sandboxId: string, request: ExecRequest): AsyncGenerator<ExecOutput> {
    for (let attempt = 1; ; attempt++) {
      const connection = await this.lease(sandboxId, request.signal);
      let started = false;
      try {
        yield* runExecChannel(connection.client, request, {
          onStarted: () => {
            started = true;
          },
          connectionLost: () => connection.isLost,
          openTimeoutMs: this.limits.handshakeTimeoutMs,
        });
        return;
      } catch (error) {
        const retry = attempt === 1 && !started && connection.isLost && !request.signal?.aborted;
        if (!retry) throw error;
        this.deps.logger.info(
          { sandbox_id: sandboxId, err: (error as Error).message },
          "exec connection lost before the command started; retrying on a fresh connection",
        );
      } finally {
        this.giveBack(connection);
      }
    }
  }

  snapshot(sandboxId: string): SandboxExecSnapshot {
    const pool = this.pools.get(sandboxId);
    let channels = 0;
    for (const connection of pool?.connections ?? []) channels += connection.leases;
    return { connections: pool?.connections.size ?? 0, channels, queued: pool?.queue.length ?? 0 };
  }

  /** Closes every connection once its channels are done; queued execs open fresh ones. */
  retireSandbox(sandboxId: string): void {
    const pool = this.pools.get(sandboxId);
    if (!pool) return;
    for (const connection of [...pool.connections]) connection.retire();
    this.admitQueued(sandboxId, pool);
  }

  /** Stops listening to session changes and closes every connection (gateway shutdown). */
  close(): void {
    this.unsubscribe();
    for (const [sandboxId, pool] of this.pools) {
      for (const waiter of pool.queue.splice(0))
        waiter.fail(new OpenShellError("unavailable", "the gateway is shutting down"));
      for (const connection of [...pool.connections]) connection.drop();
      this.pools.delete(sandboxId);
    }
  }

  /** A channel on one of the sandbox's connections, waiting in the queue when all are busy. */
  private async lease(sandboxId: string, signal?: AbortSignal): Promise<ExecConnection> {
    const pool = this.poolOf(sandboxId);
    const immediate = this.reserve(sandboxId, pool);
    const connection = immediate ?? (await this.enqueue(sandboxId, pool, signal));
    try {
      await abortable(connection.ready, signal);
      return connection;
    } catch (error) {
      this.giveBack(connection);
      throw error;
    }
  }

  private enqueue(sandboxId: string, pool: SandboxPool, signal?: AbortSignal): Promise<ExecConnection> {
    if (pool.queue.length >= this.limits.queuedPerSandbox) {
      let running = 0;
      for (const connection of pool.connections) running += connection.leases;
      this.forgetIfUnused(sandboxId, pool);
      throw new OpenShellError(
        "resource_exhausted",
        `sandbox ${sandboxId} is already running ${running} commands and ${pool.queue.length} more are waiting (the most it queues); retry when some have finished`,
      );
    }
    return new Promise<ExecConnection>((resolve, reject) => {
      const onAbort = () => {
        const index = pool.queue.indexOf(waiter);
        if (index >= 0) pool.queue.splice(index, 1);
        this.forgetIfUnused(sandboxId, pool);
        reject(new OpenShellError("canceled", "the client cancelled the command while it waited"));
      };
      const waiter: Waiter = {
        admit: (connection) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(connection);
        },
        fail: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      pool.queue.push(waiter);
    });
  }

  /**
   * A channel slot: on the fullest connection with room (fewer connections stay busy, the rest
   * go idle and close), else on a new connection unless the cap is reached or another
   * connection of this sandbox is still in its handshake.
   */
  private reserve(sandboxId: string, pool: SandboxPool): ExecConnection | undefined {
    let best: ExecConnection | undefined;
    let live = 0;
    let handshaking = false;
    for (const connection of pool.connections) {
      if (connection.state === "connecting") handshaking = true;
      if (connection.state === "connecting" || connection.state === "ready") live++;
      if (connection.hasRoom && (!best || connection.leases > best.leases)) best = connection;
    }
    if (!best && !handshaking && live < this.limits.connectionsPerSandbox) {
      best = new ExecConnection(sandboxId, this.limits, this.deps, (lost) =>
        this.connectionLost(sandboxId, pool, lost),
      );
      pool.connections.add(best);
      best.ready.then(
        () => this.admitQueued(sandboxId, pool),
        (error: Error) => this.openFailed(sandboxId, pool, error),
      );
    }
    best?.take();
    return best;
  }

  private giveBack(connection: ExecConnection): void {
    connection.giveBack();
    const pool = this.pools.get(connection.sandboxId);
    if (pool) this.admitQueued(connection.sandboxId, pool);
  }

  private admitQueued(sandboxId: string, pool: SandboxPool): void {
    while (pool.queue.length > 0) {
      const connection = this.reserve(sandboxId, pool);
      if (!connection) break;
      pool.queue.shift()?.admit(connection);
    }
    this.forgetIfUnused(sandboxId, pool);
  }

  private connectionLost(sandboxId: string, pool: SandboxPool, connection: ExecConnection): void {
    pool.connections.delete(connection);
    this.deps.logger.debug({ sandbox_id: sandboxId }, "exec SSH connection closed");
    // Defer: this runs inside ssh2's close handling, and admitting may open a connection.
    setImmediate(() => this.admitQueued(sandboxId, pool));
  }

  /** A connection could not be opened: if it was the sandbox's only one, the queue fails too. */
  private openFailed(sandboxId: string, pool: SandboxPool, error: Error): void {
    this.deps.logger.warn({ sandbox_id: sandboxId, err: error.message }, "exec SSH connection failed");
    const othersLive = [...pool.connections].some((c) => c.state === "ready");
    if (!othersLive) for (const waiter of pool.queue.splice(0)) waiter.fail(error);
    this.admitQueued(sandboxId, pool);
  }

  private poolOf(sandboxId: string): SandboxPool {
    let pool = this.pools.get(sandboxId);
    if (!pool) {
      pool = { connections: new Set(), queue: [] };
      this.pools.set(sandboxId, pool);
    }
    return pool;
  }

  private forgetIfUnused(sandboxId: string, pool: SandboxPool): void {
    if (pool.connections.size === 0 && pool.queue.length === 0 && this.pools.get(sandboxId) === pool)
      this.pools.delete(sandboxId);
  }
}

/** `promise`, or a CANCELED rejection as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted)
    return Promise.reject(new OpenShellError("canceled", "the client cancelled the command"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new OpenShellError("canceled", "the client cancelled the command"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
