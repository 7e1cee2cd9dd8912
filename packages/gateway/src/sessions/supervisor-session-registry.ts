import { randomUUID } from "node:crypto";
import { type Duplex, duplexPair } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Backoff, OpenShellError, sleep } from "@openshell/core";
import { type GatewayMessage, GatewayMessageSchema, RelayOpenSchema } from "@openshell/proto";

export interface LiveSession {
  sessionId: string;
  instanceId: string;
  connectedAt: Date;
  /** Queues a message on the session's outbound stream; false when the session is gone. */
  send(message: GatewayMessage): boolean;
  /** Ends the session's stream (used when a newer session supersedes it). */
  shutdown(): void;
}

/** Upstream's constants (supervisor_session.rs). */
export const RelayLimits = {
  pendingTimeoutMs: 10_000,
  maxPending: 256,
  maxPendingPerSandbox: 32,
  sessionWaitInitialMs: 100,
  sessionWaitMaxMs: 2_000,
  reapIntervalMs: 30_000,
  /** Buffer of each side of the in-gateway duplex that joins a relay to its requester. */
  duplexBufferBytes: 64 * 1024,
} as const;

interface PendingRelay {
  sandboxId: string;
  createdAt: number;
  deliver(stream: Duplex): boolean;
  /** The requester gave up: a later delivery fails. */
  abandon(): void;
}

export interface OpenedRelay {
  channelId: string;
  /** Resolves with the requester's end of the relay once the supervisor claims it. */
  claimed: Promise<Duplex>;
}

/**
 * The live supervisor session of each sandbox and the relays waiting for a supervisor to claim
 * them (upstream SupervisorSessionRegistry). A new session of the same sandbox supersedes the old
 * one and inherits its pending relays; removal is guarded by session id so a superseded session
 * ending late cannot remove its successor. JavaScript runs this single-threaded, so every
 * check-then-insert below is atomic without a lock.
 */
export class SupervisorSessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly pending = new Map<string, PendingRelay>();
  private readonly sessionChangeListeners = new Set<(sandboxId: string) => void>();
  private reaper: NodeJS.Timeout | undefined;
  /** Set by shutdownAll: sessions that end from then on were ended by the gateway. */
  private shutDown = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** Starts the periodic reaper of relays nobody claimed in time. */
  startReaper(intervalMs: number = RelayLimits.reapIntervalMs): void {
    this.reaper ??= setInterval(() => this.reapExpiredRelays(), intervalMs);
    this.reaper.unref();
  }

  /**
   * Calls `listener` whenever a sandbox's session ends or is superseded (what was reached
   * through the old session may be gone); returns the unsubscribe function.
   */
  onSessionChange(listener: (sandboxId: string) => void): () => void {
    this.sessionChangeListeners.add(listener);
    return () => this.sessionChangeListeners.delete(listener);
  }

  private sessionChanged(sandboxId: string): void {
    for (const listener of this.sessionChangeListeners) listener(sandboxId);
  }

  /** Registers `session`; returns the session it superseded, already told to shut down. */
  register(sandboxId: string, session: LiveSession): LiveSession | undefined {
    const previous = this.sessions.get(sandboxId);
    this.sessions.set(sandboxId, session);
    previous?.shutdown();
    if (previous) this.sessionChanged(sandboxId);
    return previous;
  }

  /**
   * Removes the session when it is still the sandbox's current one; else says why it was not:
   * a newer session superseded it, or the gateway is shutting down (shutdownAll removed it).
   */
  removeIfCurrent(sandboxId: string, sessionId: string): "removed" | "superseded" | "gateway-shutdown" {
    if (this.sessions.get(sandboxId)?.sessionId !== sessionId)
      return this.shutDown ? "gateway-shutdown" : "superseded";
    this.sessions.delete(sandboxId);
    this.sessionChanged(sandboxId);
    return "removed";
  }

  has(sandboxId: string): boolean {
    return this.sessions.has(sandboxId);
  }

  get(sandboxId: string): LiveSession | undefined {
    return this.sessions.get(sandboxId);
  }

  /** The sandboxes with a live session. */
  sandboxIds(): string[] {
    return [...this.sessions.keys()];
  }

  /** Waits for a session with backoff 100 ms doubling to 2 s; UNAVAILABLE when `timeoutMs` passes. */
  async waitForSession(sandboxId: string, timeoutMs: number, signal?: AbortSignal): Promise<LiveSession> {
    const deadline = this.now() + timeoutMs;
    const backoff = new Backoff(RelayLimits.sessionWaitInitialMs, RelayLimits.sessionWaitMaxMs);
    for (;;) {
      const session = this.sessions.get(sandboxId);
      if (session) return session;
      const delay = backoff.next();
      if (signal?.aborted || this.now() + delay > deadline) {
        throw new OpenShellError("unavailable", "supervisor session not connected");
      }
      await sleep(delay, signal);
    }
  }

  /**
   * Asks the sandbox's supervisor to open a relay: waits up to `sessionWaitMs` for a session,
   * checks the caps and records the pending relay in one synchronous step, then sends RelayOpen.
   */
  async openRelay(sandboxId: string, sessionWaitMs: number, signal?: AbortSignal): Promise<OpenedRelay> {
    const session = await this.waitForSession(sandboxId, sessionWaitMs, signal);
    if (this.pending.size >= RelayLimits.maxPending) {
      throw new OpenShellError(
        "resource_exhausted",
        `gateway relay capacity reached (${RelayLimits.maxPending} in flight)`,
      );
    }
    let perSandbox = 0;
    for (const relay of this.pending.values()) if (relay.sandboxId === sandboxId) perSandbox++;
    if (perSandbox >= RelayLimits.maxPendingPerSandbox) {
      throw new OpenShellError(
        "resource_exhausted",
        `per-sandbox relay limit reached (${RelayLimits.maxPendingPerSandbox} in flight for ${sandboxId})`,
      );
    }
    const channelId = randomUUID();
    let settled = false;
    const claimed = new Promise<Duplex>((resolve) => {
      this.pending.set(channelId, {
        sandboxId,
        createdAt: this.now(),
        deliver: (stream) => {
          if (settled) return false;
          settled = true;
          resolve(stream);
          return true;
        },
        abandon: () => {
          settled = true;
        },
      });
    });
    if (!session.send(relayOpen(channelId))) {
      this.pending.delete(channelId);
      throw new OpenShellError("unavailable", "supervisor session disconnected");
    }
    return { channelId, claimed };
  }

  /** Waits up to `timeoutMs` for the supervisor to claim the relay; cancels it otherwise. */
  async awaitClaim(relay: OpenedRelay, timeoutMs: number = RelayLimits.pendingTimeoutMs): Promise<Duplex> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new OpenShellError("deadline_exceeded", "relay open timed out")),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([relay.claimed, timeout]);
    } catch (error) {
      this.cancelRelay(relay.channelId);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The requester no longer wants the relay. */
  cancelRelay(channelId: string): void {
    this.pending.get(channelId)?.abandon();
    this.pending.delete(channelId);
  }

  /**
   * The supervisor of `claimantSandboxId` claims a relay it was asked to open: returns the
   * supervisor's end of a duplex whose other end goes to the requester.
   */
  claimRelay(channelId: string, claimantSandboxId: string): Duplex {
    const relay = this.pending.get(channelId);
    if (!relay) throw new OpenShellError("not_found", "unknown or expired relay channel");
    if (relay.sandboxId !== claimantSandboxId) {
      // Not removed: the rightful supervisor may still claim it.
      throw new OpenShellError("permission_denied", "relay channel belongs to another sandbox");
    }
    this.pending.delete(channelId);
    if (this.now() - relay.createdAt > RelayLimits.pendingTimeoutMs) {
      throw new OpenShellError("deadline_exceeded", "relay channel timed out");
    }
    const [requesterEnd, supervisorEnd] = duplexPair({
      highWaterMark: RelayLimits.duplexBufferBytes,
    });
    linkTeardown(requesterEnd, supervisorEnd);
    linkTeardown(supervisorEnd, requesterEnd);
    if (!relay.deliver(requesterEnd)) {
      requesterEnd.destroy();
      supervisorEnd.destroy();
      throw new OpenShellError("internal", "relay requester dropped");
    }
    return supervisorEnd;
  }

  /** Re-sends RelayOpen for the sandbox's pending relays to a superseding session. */
  replayPendingRelays(sandboxId: string, session: LiveSession): number {
    let replayed = 0;
    for (const [channelId, relay] of this.pending) {
      if (relay.sandboxId === sandboxId && session.send(relayOpen(channelId))) replayed++;
    }
    return replayed;
  }

  reapExpiredRelays(): number {
    const cutoff = this.now() - RelayLimits.pendingTimeoutMs;
    let reaped = 0;
    for (const [channelId, relay] of this.pending) {
      if (relay.createdAt < cutoff) {
        this.cancelRelay(channelId);
        reaped++;
      }
    }
    return reaped;
  }

  get pendingRelayCount(): number {
    return this.pending.size;
  }

  /** Drops the sandbox's session (sandbox deleted), ending its stream, and its pending relays. */
  cleanupSandbox(sandboxId: string): void {
    const session = this.sessions.get(sandboxId);
    this.sessions.delete(sandboxId);
    session?.shutdown();
    if (session) this.sessionChanged(sandboxId);
    for (const [channelId, relay] of this.pending) {
      if (relay.sandboxId === sandboxId) this.cancelRelay(channelId);
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  shutdownAll(): void {
    this.shutDown = true;
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = undefined;
    const sandboxIds = [...this.sessions.keys()];
    for (const session of this.sessions.values()) session.shutdown();
    this.sessions.clear();
    for (const sandboxId of sandboxIds) this.sessionChanged(sandboxId);
    for (const channelId of [...this.pending.keys()]) this.cancelRelay(channelId);
  }
}

/**
 * duplexPair ends do not tear each other down: when `side` is destroyed before it ended its
 * writing, the other end would wait forever. Destroy it too; after a clean end the other end
 * still drains what was buffered.
 */
function linkTeardown(side: Duplex, other: Duplex): void {
  side.once("close", () => {
    if (!side.writableEnded) other.destroy();
  });
}

function relayOpen(channelId: string): GatewayMessage {
  return create(GatewayMessageSchema, {
    payload: { case: "relayOpen", value: create(RelayOpenSchema, { channelId }) },
  });
}
