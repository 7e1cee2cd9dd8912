import type { GatewayMessage } from "@openshell/proto";

export interface LiveSession {
  sessionId: string;
  instanceId: string;
  connectedAt: Date;
  /** Queues a message on the session's outbound stream; false when the session is gone. */
  send(message: GatewayMessage): boolean;
  /** Ends the session's stream (used when a newer session supersedes it). */
  shutdown(): void;
}

/**
 * The live supervisor session of each sandbox (upstream SupervisorSessionRegistry). A new session of
 * the same sandbox supersedes the old one; removal is guarded by session id so a superseded session
 * ending late cannot remove its successor.
 */
export class SupervisorSessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();

  /** Registers `session`; returns the session it superseded, already told to shut down. */
  register(sandboxId: string, session: LiveSession): LiveSession | undefined {
    const previous = this.sessions.get(sandboxId);
    this.sessions.set(sandboxId, session);
    previous?.shutdown();
    return previous;
  }

  removeIfCurrent(sandboxId: string, sessionId: string): boolean {
    if (this.sessions.get(sandboxId)?.sessionId !== sessionId) return false;
    this.sessions.delete(sandboxId);
    return true;
  }

  has(sandboxId: string): boolean {
    return this.sessions.has(sandboxId);
  }

  get(sandboxId: string): LiveSession | undefined {
    return this.sessions.get(sandboxId);
  }

  /** Drops the sandbox's session (sandbox deleted), ending its stream. */
  cleanupSandbox(sandboxId: string): void {
    const session = this.sessions.get(sandboxId);
    this.sessions.delete(sandboxId);
    session?.shutdown();
  }

  get size(): number {
    return this.sessions.size;
  }

  shutdownAll(): void {
    for (const session of this.sessions.values()) session.shutdown();
    this.sessions.clear();
  }
}
