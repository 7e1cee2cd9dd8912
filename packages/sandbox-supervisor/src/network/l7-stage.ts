import { once } from "node:events";
import { createConnection, isIP, type OnReadOpts, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import {
  type ConnectionOptions,
  createSecureContext,
  rootCertificates,
  type SecureContext,
  TLSSocket,
  connect as tlsConnect,
} from "node:tls";
import { emitOcsf, type Logger } from "@openshell/core";
import type { AllowedTunnel, TunnelStage } from "./egress-proxy.js";
import { MAX_REQUEST_HEAD_BYTES, plainTextResponse, UPSTREAM_CONNECT_TIMEOUT_MS } from "./egress-proxy.js";
import { connected } from "./raw-relay.js";
import { ResponsePump } from "./response-pump.js";
import type { SandboxCa } from "./sandbox-ca.js";

/** A chunk-size or trailer line longer than this is a malformed body. */
const MAX_LINE_BYTES = 4096;
/** How long a denial waits for the upstream to finish the previous response before it is sent. */
const DENY_DRAIN_MS = 5000;
/** A client that sends nothing within this after the tunnel opens is dropped. */
const FIRST_BYTE_TIMEOUT_MS = 30_000;
/** Upstream TLS sessions kept for resumption (least recently stored dropped first). */
const UPSTREAM_SESSION_CACHE_SIZE = 256;

/**
 * The last TLS session of each upstream (address, port, server name), offered on the next
 * connection there: a resumed handshake skips the certificate chain and its signature check, on
 * both sides. Per supervisor, so never shared between sandboxes.
 */
class UpstreamSessions {
  private readonly sessions = new Map<string, Buffer>();

  get(key: string): Buffer | undefined {
    return this.sessions.get(key);
  }

  remember(key: string, session: Buffer): void {
    this.sessions.delete(key);
    this.sessions.set(key, session);
    if (this.sessions.size > UPSTREAM_SESSION_CACHE_SIZE) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
  }
}

interface UpstreamTls {
  context: SecureContext;
  sessions: UpstreamSessions;
}

export interface L7StageOptions {
  logger: Logger;
  /** The sandbox CA that signs the leaf certificates the proxy presents. */
  ca: SandboxCa;
  /** Extra PEM roots the upstream's certificate may chain to (tests); else the system store only. */
  upstreamCa?: string[];
}

/**
 * The tunnel stage for `protocol: rest` endpoints (§3.8): the first byte of the tunnel says TLS
 * (0x16, a ClientHello) or not. TLS is terminated with a leaf for the CONNECT host signed by the
 * sandbox CA and re-originated to the server, verified against the system trust store; plaintext
 * is inspected as it is. Each HTTP/1.1 request on the connection (keep-alive: every one) is decided
 * by the endpoint's L7 rules on its method and canonical request-target: `enforce` answers a
 * denied request with a 403 JSON body and `X-OpenShell-Policy` and closes; `audit` logs it and
 * forwards it. `tls: skip` and non-rest endpoints are not its (the proxy relays them raw).
 *
 * The upstream is dialed once the first byte is in (TLS or plain, and with the reused read buffers
 * of `ResponsePump`, which Node offers only to a socket it creates): a server that cannot be
 * reached, or whose certificate does not verify, is answered with a 502 inside the tunnel.
 */
export function createL7Stage(options: L7StageOptions): TunnelStage {
  // One client context for every upstream connection: building one per connection (what
  // tls.connect does when given `ca`) parses the ~150 system roots each time, milliseconds of CPU.
  const upstreamTls: UpstreamTls = {
    context: createSecureContext({
      ca: options.upstreamCa ? [...rootCertificates, ...options.upstreamCa] : undefined,
    }),
    sessions: new UpstreamSessions(),
  };
  return {
    inspects: ({ endpoint }) => endpoint.inspection === "rest" && !endpoint.tlsSkip,
    open: (tunnel) =>
      void firstByte(tunnel).then(
        (first) => {
          if (first === undefined) tunnel.client.destroy();
          else if (first === 0x16) return terminateTls(tunnel, options, upstreamTls);
          else return inspectPlain(tunnel, options.logger);
        },
        () => tunnel.client.destroy(),
      ),
  };
}

/** The tunnel's first byte, left unread (pushed back into the client socket). */
function firstByte(tunnel: AllowedTunnel): Promise<number | undefined> {
  const { client, clientHead } = tunnel;
  if (clientHead.length > 0) {
    client.unshift(clientHead);
    return Promise.resolve(clientHead[0]);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), FIRST_BYTE_TIMEOUT_MS);
    const done = (chunk: Buffer | undefined) => {
      clearTimeout(timer);
      client.off("data", onData);
      client.off("close", onClose);
      client.pause();
      if (chunk) client.unshift(chunk);
      resolve(chunk?.[0]);
    };
    const onData = (chunk: Buffer) => done(chunk);
    const onClose = () => done(undefined);
    client.on("data", onData);
    client.on("close", onClose);
    client.resume();
  });
}

/** A 502 for the client, as the HTTP server it believes it talks to. */
const badGateway = (reason: string) => plainTextResponse(502, "Bad Gateway", `${reason}\n`);

/** Dials with `connect`; the reason the client is told when that fails, else the socket. */
async function dialUpstream<T extends Socket>(
  tunnel: AllowedTunnel,
  connect: (address: string, port: number) => Promise<T>,
): Promise<T | string> {
  try {
    return await tunnel.dial(connect);
  } catch (error) {
    return `cannot connect to ${tunnel.target.host}:${tunnel.target.port}: ${(error as Error).message}`;
  }
}

async function inspectPlain(tunnel: AllowedTunnel, logger: Logger): Promise<void> {
  const pump = new ResponsePump();
  const upstream = await dialUpstream(tunnel, (address, port) => {
    const socket = createConnection({
      host: address,
      port,
      timeout: UPSTREAM_CONNECT_TIMEOUT_MS,
      onread: pump.onread,
    });
    pump.reads(socket);
    return connected(socket, UPSTREAM_CONNECT_TIMEOUT_MS);
  });
  if (typeof upstream === "string") {
    tunnel.client.end(badGateway(upstream));
    return;
  }
  inspectHttp(tunnel.client, upstream, pump, tunnel, logger, "http");
}

async function terminateTls(
  tunnel: AllowedTunnel,
  options: L7StageOptions,
  upstreamTls: UpstreamTls,
): Promise<void> {
  const { target, identity, decision } = tunnel;
  const { logger } = options;
  const pump = new ResponsePump();
  // The client's ClientHello waits in its socket (pushed back) while the server is reached and checked.
  const dialed = await dialUpstream(tunnel, async (address, port) => {
    const servername = isIP(target.host) === 0 ? target.host : undefined;
    const sessionKey = `${address} ${port} ${servername ?? ""}`;
    // tls.connect takes `onread` when it makes the socket (Node's documentation); @types/node lacks it.
    const connectOptions: ConnectionOptions & { onread: OnReadOpts } = {
      host: address,
      port,
      servername,
      secureContext: upstreamTls.context,
      session: upstreamTls.sessions.get(sessionKey),
      ALPNProtocols: ["http/1.1"],
      onread: pump.onread,
    };
    const socket = tlsConnect(connectOptions);
    socket.on("session", (session: Buffer) => upstreamTls.sessions.remember(sessionKey, session));
    pump.reads(socket);
    socket.setTimeout(UPSTREAM_CONNECT_TIMEOUT_MS);
    await connected(socket, UPSTREAM_CONNECT_TIMEOUT_MS);
    return socket;
  });
  const failure =
    typeof dialed === "string" ? dialed : await upstreamHandshakeFailure(dialed, tunnel, logger);
  const upstream = typeof dialed === "string" || failure !== undefined ? undefined : dialed;
  let client: TLSSocket;
  try {
    const secureContext = await options.ca.contextFor(target.host);
    client = new TLSSocket(tunnel.client, {
      isServer: true,
      secureContext,
      ALPNProtocols: ["http/1.1"],
    });
  } catch (error) {
    upstream?.destroy();
    tunnel.client.destroy();
    emitOcsf(logger, {
      class: "NET",
      activity: "FAIL",
      severity: "MEDIUM",
      message: `${identity.label} -> ${target.host}:${target.port}: TLS termination failed: ${(error as Error).message} [policy:${decision.policyName}]`,
    });
    return;
  }
  let secured = false;
  client.once("secure", () => {
    secured = true;
  });
  client.on("error", (error) => {
    // A client that refuses the leaf (it does not use the sandbox CA bundle) ends here.
    if (!secured) {
      emitOcsf(logger, {
        class: "NET",
        activity: "FAIL",
        severity: "LOW",
        message: `${identity.label} -> ${target.host}:${target.port}: TLS handshake with the client failed: ${error.message} (does it trust the sandbox CA, e.g. through SSL_CERT_FILE?) [policy:${decision.policyName}]`,
        fields: { dst_host: target.host, dst_port: target.port, pid: identity.pid, binary: identity.path },
      });
    }
    client.destroy();
    upstream?.destroy();
  });
  if (!upstream) {
    client.once("secure", () => client.end(badGateway(failure ?? "")));
    return;
  }
  inspectHttp(client, upstream, pump, tunnel, logger, "https");
}

/**
 * Waits for the upstream's TLS handshake; on failure logs it, closes the socket and returns what the
 * client is told.
 */
async function upstreamHandshakeFailure(
  upstream: TLSSocket,
  tunnel: AllowedTunnel,
  logger: Logger,
): Promise<string | undefined> {
  const { target, identity, decision } = tunnel;
  upstream.on("error", () => undefined);
  const error = await new Promise<Error | undefined>((resolve) => {
    upstream.once("secureConnect", () => resolve(undefined));
    upstream.once("error", resolve);
    upstream.once("close", () => resolve(new Error("the server closed the connection")));
  });
  if (!error) return undefined;
  emitOcsf(logger, {
    class: "NET",
    activity: "FAIL",
    severity: "MEDIUM",
    message: `${identity.label} -> ${target.host}:${target.port}: upstream TLS failed: ${error.message} [policy:${decision.policyName}]`,
    fields: {
      dst_host: target.host,
      dst_port: target.port,
      pid: identity.pid,
      binary: identity.path,
      reason: error.message,
    },
  });
  upstream.destroy();
  return `upstream TLS to ${target.host}:${target.port} failed: ${error.message}`;
}

interface ParsedHead {
  method: string;
  target: string;
  version: string;
  lines: string[];
  chunked: boolean;
  contentLength: number;
  upgrade: boolean;
}

/** Parses a request head; a string is why it is refused (400). */
function parseHead(head: Buffer): ParsedHead | string {
  const lines = head.toString("latin1").split("\r\n");
  const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0] ?? "");
  if (!match) return "malformed request line";
  const [, method = "", target = "", version = ""] = match;
  let chunked = false;
  let contentLength: number | undefined;
  let hasTransferEncoding = false;
  let upgrade = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) return "malformed header line";
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d{1,15}$/.test(value)) return "invalid Content-Length";
      const length = Number(value);
      if (contentLength !== undefined && contentLength !== length) return "conflicting Content-Length";
      contentLength = length;
    } else if (name === "transfer-encoding") {
      hasTransferEncoding = true;
      chunked = value.toLowerCase() === "chunked";
      if (!chunked) return `unsupported Transfer-Encoding '${value}'`;
    } else if (name === "upgrade") {
      upgrade = true;
    }
  }
  // Both framings at once is how requests are smuggled past a proxy.
  if (hasTransferEncoding && contentLength !== undefined) return "both Transfer-Encoding and Content-Length";
  return {
    method,
    target,
    version,
    lines: lines.slice(1),
    chunked,
    contentLength: contentLength ?? 0,
    upgrade,
  };
}

/**
 * The HTTP/1.1 request loop of one inspected connection. Requests are parsed and decided one by
 * one; bodies (Content-Length or chunked) are streamed through; responses are relayed as bytes.
 * A denial waits for the upstream to finish what it was answering (the client's write side is
 * closed to it), then the 403 goes out and the connection closes. A `101` to a request that asked
 * to upgrade makes the rest of the connection raw; a `101` nobody asked for is a finding and
 * closes the connection.
 */
function inspectHttp(
  client: Duplex,
  upstream: Socket,
  responses: ResponsePump,
  tunnel: AllowedTunnel,
  logger: Logger,
  scheme: "http" | "https",
): void {
  const { target: dest, identity, decision, decisions } = tunnel;
  const { endpoint } = decision;
  const reader = new StreamReader(client);
  let denial: string | undefined;
  let raw = false;
  let awaitingUpgrade: ((upgraded: boolean) => void) | undefined;
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", closeBoth);
  upstream.on("error", closeBoth);
  client.on("close", () => upstream.destroy());

  responses.attach(client, (chunk) => {
    // Most chunks are body bytes: only one that starts like a status line is looked at further.
    if (raw || chunk[0] !== 0x48 /* H */) return true;
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.subarray(0, 16).toString("latin1"))?.[1];
    if (status !== undefined && awaitingUpgrade) {
      raw = status === "101";
      awaitingUpgrade(raw);
      awaitingUpgrade = undefined;
    } else if (status === "101") {
      emitOcsf(logger, {
        class: "FINDING",
        activity: "BLOCKED",
        severity: "HIGH",
        disposition: "BLOCKED",
        message: `${identity.label} -> ${dest.host}:${dest.port}: unsolicited 101 Switching Protocols from the server (no Upgrade was requested); connection closed [policy:${decision.policyName}]`,
        fields: {
          dst_host: dest.host,
          dst_port: dest.port,
          binary: identity.path,
          policy: decision.policyName,
        },
      });
      closeBoth();
      return false;
    }
    return true;
  });
  const sendDenial = () => {
    if (denial === undefined) return false;
    if (!client.destroyed && client.writable) client.end(denial);
    denial = undefined;
    return true;
  };
  upstream.on("end", () => {
    if (!sendDenial()) client.end();
  });

  const refuse = (status: number, text: string, body: string) => {
    reader.detach();
    client.end(plainTextResponse(status, text, body));
    upstream.destroy();
  };

  const loop = async () => {
    for (;;) {
      const head = await reader.head(MAX_REQUEST_HEAD_BYTES);
      if (head === undefined) {
        upstream.end();
        return;
      }
      if (head === "too-large")
        return refuse(431, "Request Header Fields Too Large", "request head exceeds 8192 bytes\n");
      const parsed = parseHead(head);
      if (typeof parsed === "string") return refuse(400, "Bad Request", `${parsed}\n`);
      const { method, target } = parsed;
      const verdict = endpoint.l7?.evaluateRequest({ method, target }) ?? {
        allowed: true,
        forward: true,
        mode: endpoint.enforcement,
      };
      const forwardTarget =
        verdict.canonicalPath === undefined
          ? target
          : `${verdict.canonicalPath}${verdict.query === undefined ? "" : `?${verdict.query}`}`;
      const outcome = verdict.allowed ? "allow" : verdict.forward ? "audit" : "deny";
      const why = verdict.allowed ? `rule:${verdict.rule ?? "-"}` : `reason:${verdict.reason ?? "-"}`;
      emitOcsf(logger, {
        class: "HTTP",
        activity: method,
        severity: verdict.allowed ? "INFO" : verdict.forward ? "LOW" : "MEDIUM",
        disposition: verdict.forward ? "ALLOWED" : "BLOCKED",
        message: `${identity.label} -> ${method} ${scheme}://${dest.host}:${dest.port}${target} [policy:${decision.policyName} ${why} mode:${verdict.mode}${outcome === "audit" ? " audit:forwarded" : ""}]`,
        fields: {
          dst_host: dest.host,
          dst_port: dest.port,
          pid: identity.pid,
          binary: identity.path,
          policy: decision.policyName,
          http_method: method,
          http_target: target,
          canonical_path: verdict.canonicalPath,
          l7_decision: outcome,
          l7_rule: verdict.rule,
          l7_mode: verdict.mode,
          reason: verdict.reason,
          tls_terminated: scheme === "https",
        },
      });
      if (!verdict.forward) {
        const body = decisions.l7DeniedBody(
          endpoint.ruleKey,
          method,
          target,
          verdict.reason ?? "denied by policy",
        );
        denial = `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n${decisions.policyHeader}: ${endpoint.ruleKey}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
        reader.detach();
        // Let the upstream finish the response it owes, then answer and close.
        upstream.end();
        setTimeout(() => {
          sendDenial();
          upstream.destroy();
        }, DENY_DRAIN_MS).unref();
        return;
      }
      const requestHead = `${method} ${forwardTarget} ${parsed.version}\r\n${parsed.lines.map((line) => `${line}\r\n`).join("")}\r\n`;
      await write(upstream, Buffer.from(requestHead, "latin1"));
      if (parsed.chunked) await copyChunked(reader, upstream);
      else if (parsed.contentLength > 0) await copyFixed(reader, upstream, parsed.contentLength);
      if (parsed.upgrade) {
        const upgraded = await new Promise<boolean>((resolve) => {
          awaitingUpgrade = resolve;
        });
        if (upgraded) {
          emitOcsf(logger, {
            class: "HTTP",
            activity: "UPGRADE",
            message: `${identity.label} -> ${dest.host}:${dest.port}: protocol upgraded (101); the rest of the connection is relayed without L7 inspection [policy:${decision.policyName}]`,
            fields: {
              dst_host: dest.host,
              dst_port: dest.port,
              binary: identity.path,
              policy: decision.policyName,
            },
          });
          const rest = reader.detach();
          if (rest.length > 0) upstream.write(rest);
          client.pipe(upstream);
          client.resume();
          return;
        }
      }
    }
  };
  loop().catch(closeBoth);
}

async function write(stream: Duplex, bytes: Buffer): Promise<void> {
  if (stream.destroyed) throw new Error("upstream closed");
  if (!stream.write(bytes)) await once(stream, "drain");
}

async function copyFixed(reader: StreamReader, upstream: Duplex, length: number): Promise<void> {
  let left = length;
  while (left > 0) {
    const chunk = await reader.take(left);
    if (chunk === undefined) throw new Error("client closed inside a request body");
    left -= chunk.length;
    await write(upstream, chunk);
  }
}

async function copyChunked(reader: StreamReader, upstream: Duplex): Promise<void> {
  for (;;) {
    const line = await reader.line(MAX_LINE_BYTES);
    if (line === undefined) throw new Error("malformed chunked body");
    const size = /^([0-9A-Fa-f]{1,15})(?:[ \t]*;.*)?$/.exec(line)?.[1];
    if (size === undefined) throw new Error("malformed chunk size");
    await write(upstream, Buffer.from(`${line}\r\n`, "latin1"));
    const length = Number.parseInt(size, 16);
    if (length === 0) {
      // Trailers, up to the empty line.
      for (;;) {
        const trailer = await reader.line(MAX_LINE_BYTES);
        if (trailer === undefined) throw new Error("malformed chunked trailer");
        await write(upstream, Buffer.from(`${trailer}\r\n`, "latin1"));
        if (trailer === "") return;
      }
    }
    await copyFixed(reader, upstream, length);
    const end = await reader.line(2);
    if (end !== "") throw new Error("chunk not followed by CRLF");
    await write(upstream, Buffer.from("\r\n"));
  }
}

/** Pull-style reads from a stream: a head, a line, up to n bytes; paused between reads. */
class StreamReader {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  private detached = false;

  constructor(private readonly stream: Duplex) {
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
    stream.on("close", this.onEnd);
    stream.pause();
  }

  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.stream.pause();
    this.wake?.();
  };

  private readonly onEnd = () => {
    this.ended = true;
    this.wake?.();
  };

  /** Waits for more bytes; false when the stream ended (or the reader was detached). */
  private async more(): Promise<boolean> {
    if (this.ended || this.detached) return false;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      this.stream.resume();
    });
    this.wake = undefined;
    return !this.detached && (!this.ended || this.buffered.length > 0);
  }

  /** Up to and without the blank line; undefined when the stream ends first. */
  async head(max: number): Promise<Buffer | "too-large" | undefined> {
    for (;;) {
      const end = this.buffered.indexOf("\r\n\r\n");
      if (end !== -1) {
        if (end + 4 > max) return "too-large";
        const head = this.buffered.subarray(0, end);
        this.buffered = this.buffered.subarray(end + 4);
        return head;
      }
      if (this.buffered.length > max) return "too-large";
      if (!(await this.more())) return undefined;
    }
  }

  async line(max: number): Promise<string | undefined> {
    for (;;) {
      const end = this.buffered.indexOf("\r\n");
      if (end !== -1) {
        const line = this.buffered.subarray(0, end).toString("latin1");
        this.buffered = this.buffered.subarray(end + 2);
        return line;
      }
      if (this.buffered.length > max) return undefined;
      if (!(await this.more())) return undefined;
    }
  }

  async take(max: number): Promise<Buffer | undefined> {
    while (this.buffered.length === 0) {
      if (!(await this.more())) return undefined;
    }
    const chunk = this.buffered.subarray(0, max);
    this.buffered = this.buffered.subarray(chunk.length);
    return chunk;
  }

  /** Stops reading; returns what was buffered. */
  detach(): Buffer {
    this.detached = true;
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.stream.off("close", this.onEnd);
    this.stream.pause();
    this.wake?.();
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }
}
