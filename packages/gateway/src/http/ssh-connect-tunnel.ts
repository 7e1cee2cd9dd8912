import type http from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { fromBinary } from "@bufbuild/protobuf";
import { type Logger, OpenShellError } from "@openshell/core";
import { SandboxPhase, SshSessionSchema } from "@openshell/proto";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";
import { ObjectTypes, type Store } from "../store/store.js";

/** Upstream's limits (ssh_tunnel.rs). */
const TunnelLimits = {
  maxConnectionsPerToken: 3,
  maxConnectionsPerSandbox: 20,
  sessionWaitMs: 30_000,
} as const;

const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

export interface SshConnectTunnelDeps {
  store: Store;
  records: SandboxRecords;
  sessions: SupervisorSessionRegistry;
  logger: Logger;
  connectPath: string;
  sessionWaitMs?: number;
}

class TunnelRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `CONNECT /connect/ssh` with x-sandbox-id and x-sandbox-token (from CreateSshSession): checks the
 * token, the sandbox and the caps, opens a relay to the sandbox's supervisor, answers 200 and then
 * carries the raw SSH bytes between the client and the relay.
 */
export class SshConnectTunnel {
  private readonly perToken = new Map<string, number>();
  private readonly perSandbox = new Map<string, number>();

  constructor(private readonly deps: SshConnectTunnelDeps) {}

  /** True when `path` is the tunnel's path (other methods on it get 405). */
  handlesPath(url: string | undefined): boolean {
    return pathOf(url) === this.deps.connectPath;
  }

  handle(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    this.open(req, socket, head).catch((error: unknown) => {
      const refusal =
        error instanceof TunnelRefusal ? error : new TunnelRefusal(502, OpenShellError.from(error).message);
      this.deps.logger.info(
        { status: refusal.status, reason: refusal.message, sandbox_id: req.headers["x-sandbox-id"] },
        "ssh tunnel refused",
      );
      respond(socket, refusal.status, refusal.message);
    });
  }

  private async open(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    if (!this.handlesPath(req.url)) throw new TunnelRefusal(404, `no CONNECT endpoint at ${pathOf(req.url)}`);
    const sandboxId = header(req, "x-sandbox-id");
    const token = header(req, "x-sandbox-token");
    const row = await this.deps.store.getObject(ObjectTypes.sshSession, token);
    if (!row) throw new TunnelRefusal(401, "unknown SSH session token; create one with CreateSshSession");
    const session = fromBinary(SshSessionSchema, row.payload);
    if (session.revoked) throw new TunnelRefusal(401, "SSH session token was revoked");
    if (session.sandboxId !== sandboxId)
      throw new TunnelRefusal(401, "SSH session token belongs to another sandbox");
    if (session.expiresAtMs > 0n && BigInt(Date.now()) > session.expiresAtMs) {
      throw new TunnelRefusal(401, "SSH session token expired; create a new session");
    }
    const sandbox = await this.deps.records.get(sandboxId);
    if (!sandbox) throw new TunnelRefusal(404, `sandbox ${sandboxId} not found`);
    if (sandbox.phase !== SandboxPhase.READY) throw new TunnelRefusal(412, "sandbox is not ready");
    if ((this.perToken.get(token) ?? 0) >= TunnelLimits.maxConnectionsPerToken) {
      throw new TunnelRefusal(
        429,
        `too many connections for this SSH session (limit ${TunnelLimits.maxConnectionsPerToken})`,
      );
    }
    if ((this.perSandbox.get(sandboxId) ?? 0) >= TunnelLimits.maxConnectionsPerSandbox) {
      throw new TunnelRefusal(
        429,
        `too many SSH connections to sandbox ${sandboxId} (limit ${TunnelLimits.maxConnectionsPerSandbox})`,
      );
    }
    increment(this.perToken, token);
    increment(this.perSandbox, sandboxId);
    const release = once(() => {
      decrement(this.perToken, token);
      decrement(this.perSandbox, sandboxId);
    });
    socket.once("close", release);
    try {
      const aborted = new AbortController();
      socket.once("close", () => aborted.abort());
      const opened = await this.deps.sessions.openRelay(
        sandboxId,
        this.deps.sessionWaitMs ?? TunnelLimits.sessionWaitMs,
        aborted.signal,
      );
      const relay = await this.deps.sessions.awaitClaim(opened);
      if (socket.destroyed) {
        relay.destroy();
        return;
      }
      socket.setNoDelay(true);
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) relay.write(head);
      splice(socket, relay);
      this.deps.logger.debug({ sandbox_id: sandboxId, channel_id: opened.channelId }, "ssh tunnel open");
    } catch (error) {
      release();
      throw error;
    }
  }
}

/** Copies both ways with backpressure and half-close; either side failing tears down both. */
function splice(socket: net.Socket, relay: Duplex): void {
  socket.pipe(relay);
  relay.pipe(socket);
  const teardown = () => {
    socket.destroy();
    relay.destroy();
  };
  relay.on("error", teardown);
  socket.on("error", teardown);
  relay.on("close", () => {
    if (!socket.writableEnded) socket.end();
  });
  socket.on("close", () => relay.destroy());
}

function header(req: http.IncomingMessage, name: string): string {
  const value = req.headers[name];
  if (value === undefined) throw new TunnelRefusal(401, `missing ${name} header`);
  const text = Array.isArray(value) ? value[0] : value;
  if (!text || !PRINTABLE_ASCII.test(text))
    throw new TunnelRefusal(400, `${name} header is empty or not ASCII`);
  return text;
}

function respond(socket: net.Socket, status: number, message: string): void {
  if (socket.destroyed) return;
  const reason = REASONS[status] ?? "Error";
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  412: "Precondition Failed",
  429: "Too Many Requests",
  502: "Bad Gateway",
};

function pathOf(url: string | undefined): string {
  return (url ?? "").split("?")[0] ?? "";
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, key: string): void {
  const next = (counts.get(key) ?? 1) - 1;
  if (next <= 0) counts.delete(key);
  else counts.set(key, next);
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
