import { lookup } from "node:dns/promises";
import { createServer, isIP, type Server, type Socket } from "node:net";
import { emitOcsf, type Logger } from "@openshell/core";
import { BinaryTrustCache } from "./binary-trust.js";
import type { ConnectTarget, EndpointDecision, NetworkDecisions } from "./network-decisions.js";
import { type ProcessIdentity, ProcessIdentityResolver } from "./process-identity.js";
import { RelayUpstream } from "./raw-relay.js";

/** §3.8: the request head (request line + headers) may be at most this long, else 431. */
export const MAX_REQUEST_HEAD_BYTES = 8192;
/** A client that sends no complete head within this is dropped. */
const HEAD_TIMEOUT_MS = 30_000;
const CONNECT_ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n";
/** A dialed upstream that does not answer within this is given up (502). */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 15_000;

/** What an allowed connection looks like to the stage that carries its bytes. */
export interface AllowedTunnel {
  client: Socket;
  /**
   * Dials the admitted addresses in turn with `connect` (the stage chooses plain TCP or TLS, and
   * how the socket reads), after the proxy's pre-dial hook; logs the opened connection, or logs the
   * failure and rejects with it (the stage answers the client).
   */
  dial<T extends Socket>(connect: (address: string, port: number) => Promise<T>): Promise<T>;
  target: ConnectTarget;
  decision: EndpointDecision;
  identity: ProcessIdentity;
  /** The policy the connection was decided with (its L7 403 body). */
  decisions: NetworkDecisions;
  /** Bytes the client sent after the CONNECT head (already read from the socket). */
  clientHead: Buffer;
}

/**
 * Carries the allowed CONNECT tunnels that need more than bytes relayed both ways (the TLS/L7
 * stage: `protocol: rest` endpoints without `tls: skip`). The others get the raw relay. A stage's
 * tunnel is answered 200 at once and the stage dials the upstream itself once the client's first
 * bytes say how (TLS or plain), so a failure to reach it is answered inside the tunnel (502).
 */
export interface TunnelStage {
  inspects(decision: EndpointDecision): boolean;
  open(tunnel: AllowedTunnel): void;
}

export interface EgressProxyOptions {
  /** Where to listen: the host side of the veth (10.200.0.1:3128). */
  host: string;
  port: number;
  logger: Logger;
  /** The current compiled policy's decisions (read on every connection: a reload applies at once). */
  decisions: () => NetworkDecisions | undefined;
  /** `/proc/<pid>/net` of a process inside the sandbox namespace (undefined: identity unknown). */
  procNetDir: () => string | undefined;
  /** Replaces the raw relay for allowed tunnels (TLS termination, L7). */
  tunnelStage?: TunnelStage;
  /** Replaces DNS resolution (tests). */
  resolve?: (host: string) => Promise<string[]>;
  /** Called with each address before it is dialed (the VM opens an allowed host service). */
  beforeDial?: (address: string, port: number) => Promise<void>;
}

interface RequestHead {
  method: string;
  target: string;
  version: string;
  headerLines: string[];
  /** Bytes after the head. */
  rest: Buffer;
}

/**
 * The sandbox's only way out (§3.8): an HTTP proxy on the host side of the namespace's veth.
 * CONNECT host:port and absolute-form http:// requests; each connection is attributed to the
 * process that opened it, decided against the current compiled policy, checked against SSRF after
 * resolution, and relayed to a resolved address (never re-resolved by anyone else).
 */
export class EgressProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly trust = new BinaryTrustCache();
  private readonly identities = new ProcessIdentityResolver();

  private constructor(private readonly options: EgressProxyOptions) {
    this.server = createServer((socket) => this.accept(socket));
  }

  static async start(options: EgressProxyOptions): Promise<EgressProxy> {
    const proxy = new EgressProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen({ host: options.host, port: options.port }, () => {
        proxy.server.off("error", reject);
        resolve();
      });
    });
    emitOcsf(options.logger, {
      class: "NET",
      activity: "LISTEN",
      message: `egress proxy listening on ${options.host}:${options.port}`,
    });
    return proxy;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => client.destroy());
    client.setNoDelay(true);
    readHead(client).then(
      (head) => {
        if (head === "too-large")
          return respond(client, 431, "Request Header Fields Too Large", "request head exceeds 8192 bytes\n");
        if (head === undefined) return client.destroy();
        return this.handle(client, head);
      },
      () => client.destroy(),
    );
  }

  private async handle(client: Socket, head: RequestHead): Promise<void> {
    if (head.method === "CONNECT") {
      const target = parseAuthority(head.target, undefined);
      if (!target) return respond(client, 400, "Bad Request", `invalid CONNECT target '${head.target}'\n`);
      return this.connect(client, head, target);
    }
    let url: URL;
    try {
      url = new URL(head.target);
    } catch {
      return respond(
        client,
        400,
        "Bad Request",
        "the proxy takes CONNECT or absolute-form http:// requests\n",
      );
    }
    if (url.protocol === "https:") return respond(client, 400, "Bad Request", "Use CONNECT for HTTPS URLs\n");
    if (url.protocol !== "http:")
      return respond(client, 400, "Bad Request", `unsupported scheme '${url.protocol}'\n`);
    const target = parseAuthority(url.host, 80);
    if (!target) return respond(client, 400, "Bad Request", `invalid host '${url.host}'\n`);
    return this.forward(client, head, url, target);
  }

  /** Identity, decision, SSRF: the allowed endpoint and the addresses to dial, else a response sent. */
  private async admit(client: Socket, target: ConnectTarget, what: "CONNECT" | "FORWARD") {
    const { logger } = this.options;
    const hostPort = `${target.host}:${target.port}`;
    // The policy of this moment: a reload applies to the next connection, never halfway.
    const decisions = this.options.decisions();
    const deny = (reason: string, identity: ProcessIdentity | undefined, policy?: string) => {
      emitOcsf(logger, {
        class: "NET",
        activity: "REFUSE",
        severity: "MEDIUM",
        disposition: "BLOCKED",
        message: `${identity?.label ?? "unknown"} -> ${hostPort} [policy:${policy ?? "-"} reason:${reason}]`,
        fields: netFields(target, identity, policy, reason, what),
      });
      respondJson(client, 403, decisions?.policyDeniedBody(target) ?? policyDenied(target));
      return undefined;
    };
    if (!decisions) return deny("no network policy loaded", undefined);
    const identity = await this.identify(client);
    if (typeof identity === "string") return deny(identity, undefined);
    const untrusted = await this.trust.check(identity.pid, identity.path);
    if (untrusted) {
      emitOcsf(logger, {
        class: "FINDING",
        activity: "BLOCKED",
        severity: "HIGH",
        message: `${identity.label}: ${untrusted}`,
        fields: { binary: identity.path, pid: identity.pid },
      });
      return deny(untrusted, identity);
    }
    const decision = decisions.evaluateConnect({
      host: target.host,
      port: target.port,
      binary: { path: identity.path, ancestors: identity.ancestors, cmdlinePaths: identity.cmdlinePaths },
    });
    if (!decision.allowed) return deny(decision.reason, identity, decision.policyName);
    let addresses: string[];
    try {
      addresses = isIP(target.host) ? [target.host] : await (this.options.resolve ?? resolveAll)(target.host);
    } catch (error) {
      emitOcsf(logger, {
        class: "NET",
        activity: "FAIL",
        severity: "LOW",
        message: `${identity.label} -> ${hostPort}: DNS resolution failed: ${(error as Error).message} [policy:${decision.policyName}]`,
        fields: netFields(target, identity, decision.policyName, "dns", what),
      });
      respond(client, 502, "Bad Gateway", `cannot resolve ${target.host}\n`);
      return undefined;
    }
    const ssrf = decisions.checkResolvedAddresses(decision.endpoint, target, addresses, {
      forwardProxy: what === "FORWARD",
    });
    if (!ssrf.allowed) {
      emitOcsf(logger, {
        class: "NET",
        activity: "REFUSE",
        severity: "MEDIUM",
        disposition: "BLOCKED",
        message: `${identity.label} -> ${hostPort} [policy:${decision.policyName} reason:ssrf: ${ssrf.reason}]`,
        fields: {
          ...netFields(target, identity, decision.policyName, ssrf.reason, what),
          ssrf: true,
          resolved: addresses,
        },
      });
      respondJson(client, 403, decisions.ssrfDeniedBody(target, ssrf.kind));
      return undefined;
    }
    return { identity, decision, addresses, decisions };
  }

  private async identify(client: Socket): Promise<ProcessIdentity | string> {
    const procNetDir = this.options.procNetDir();
    if (!procNetDir) return "process identity unavailable (no namespace process)";
    if (!client.remoteAddress || !client.remotePort || !client.localAddress || !client.localPort) {
      return "process identity unavailable (client gone)";
    }
    try {
      const identity = await this.identities.resolve(
        procNetDir,
        { address: client.remoteAddress, port: client.remotePort },
        { address: client.localAddress, port: client.localPort },
      );
      return identity ?? `no process owns the connection from port ${client.remotePort}`;
    } catch (error) {
      return `process identity failed: ${(error as Error).message}`;
    }
  }

  private async connect(client: Socket, head: RequestHead, target: ConnectTarget): Promise<void> {
    const admitted = await this.admit(client, target, "CONNECT");
    if (!admitted) return;
    const { identity, decision, addresses, decisions } = admitted;
    const stage = this.options.tunnelStage?.inspects(decision) ? this.options.tunnelStage : undefined;
    if (stage) {
      client.write(CONNECT_ESTABLISHED);
      stage.open({
        client,
        dial: (connect) =>
          dial(addresses, target.port, this.options.beforeDial, connect).then(
            (upstream) => {
              this.opened(upstream, target, identity, decision);
              return upstream;
            },
            (error: unknown) => {
              this.logUpstreamFailure(target, identity, decision, error);
              throw error;
            },
          ),
        target,
        decision,
        identity,
        decisions,
        clientHead: head.rest,
      });
      return;
    }
    let relayUpstream: RelayUpstream;
    try {
      relayUpstream = await dial(addresses, target.port, this.options.beforeDial, connectForRelay);
    } catch (error) {
      this.upstreamFailed(client, target, identity, decision, error);
      return;
    }
    const upstream = relayUpstream.socket;
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    this.opened(upstream, target, identity, decision);
    client.write(CONNECT_ESTABLISHED);
    relayUpstream.relayTo(client, head.rest);
  }

  /** Tracks a dialed tunnel upstream (closed with the proxy) and logs it as opened. */
  private opened(
    upstream: Socket,
    target: ConnectTarget,
    identity: ProcessIdentity,
    decision: EndpointDecision,
  ) {
    this.sockets.add(upstream);
    upstream.on("close", () => this.sockets.delete(upstream));
    emitOcsf(this.options.logger, {
      class: "NET",
      activity: "OPEN",
      disposition: "ALLOWED",
      message: `${identity.label} -> ${target.host}:${target.port} [policy:${decision.policyName} engine:compiled]`,
      fields: {
        ...netFields(target, identity, decision.policyName, undefined, "CONNECT"),
        dst_ip: upstream.remoteAddress,
      },
    });
  }

  private async forward(client: Socket, head: RequestHead, url: URL, target: ConnectTarget): Promise<void> {
    const admitted = await this.admit(client, target, "FORWARD");
    if (!admitted) return;
    const { identity, decision, addresses, decisions } = admitted;
    // `protocol: rest` over plain http:// in absolute form: the one request is decided here.
    const { endpoint } = decision;
    const originTarget = `${url.pathname}${url.search}`;
    const verdict =
      endpoint.inspection === "rest" && !endpoint.tlsSkip
        ? endpoint.l7?.evaluateRequest({ method: head.method, target: originTarget })
        : undefined;
    if (verdict && !verdict.allowed) {
      emitOcsf(this.options.logger, {
        class: "HTTP",
        activity: head.method,
        severity: verdict.forward ? "LOW" : "MEDIUM",
        disposition: verdict.forward ? "ALLOWED" : "BLOCKED",
        message: `${identity.label} -> ${head.method} ${url.href} [policy:${decision.policyName} reason:${verdict.reason ?? "-"} mode:${verdict.mode}${verdict.forward ? " audit:forwarded" : ""}]`,
        fields: {
          ...netFields(target, identity, decision.policyName, verdict.reason, "FORWARD"),
          http_method: head.method,
          http_target: originTarget,
          l7_decision: verdict.forward ? "audit" : "deny",
          l7_mode: verdict.mode,
        },
      });
      if (!verdict.forward) {
        const body = decisions.l7DeniedBody(
          endpoint.ruleKey,
          head.method,
          originTarget,
          verdict.reason ?? "denied",
        );
        client.end(
          `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n${decisions.policyHeader}: ${endpoint.ruleKey}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
    }
    const forwardTarget =
      verdict?.canonicalPath === undefined
        ? originTarget
        : `${verdict.canonicalPath}${verdict.query === undefined ? "" : `?${verdict.query}`}`;
    let relayUpstream: RelayUpstream;
    try {
      relayUpstream = await dial(addresses, target.port, this.options.beforeDial, connectForRelay);
    } catch (error) {
      this.upstreamFailed(client, target, identity, decision, error);
      return;
    }
    const upstream = relayUpstream.socket;
    this.sockets.add(upstream);
    upstream.on("close", () => this.sockets.delete(upstream));
    emitOcsf(this.options.logger, {
      class: "HTTP",
      activity: head.method,
      disposition: "ALLOWED",
      message: `${identity.label} -> ${head.method} ${url.href} [policy:${decision.policyName} engine:compiled${verdict?.rule ? ` rule:${verdict.rule}` : ""}]`,
      fields: {
        ...netFields(target, identity, decision.policyName, undefined, "FORWARD"),
        dst_ip: upstream.remoteAddress,
        ...(verdict
          ? {
              http_method: head.method,
              l7_decision: verdict.allowed ? "allow" : "audit",
              l7_rule: verdict.rule,
            }
          : {}),
      },
    });
    // One request per connection: the upstream closes after its response, and so does the client.
    const headers = head.headerLines.filter(
      (line) => !/^(proxy-[a-z-]*|connection|keep-alive)\s*:/i.test(line),
    );
    const requestHead = [
      `${head.method} ${forwardTarget} ${head.version}`,
      ...headers,
      "Connection: close",
      "",
      "",
    ].join("\r\n");
    upstream.write(requestHead);
    relayUpstream.relayTo(client, head.rest);
  }

  private upstreamFailed(
    client: Socket,
    target: ConnectTarget,
    identity: ProcessIdentity,
    decision: EndpointDecision,
    error: unknown,
  ): void {
    this.logUpstreamFailure(target, identity, decision, error);
    respond(
      client,
      502,
      "Bad Gateway",
      `cannot connect to ${target.host}:${target.port}: ${(error as Error).message}\n`,
    );
  }

  private logUpstreamFailure(
    target: ConnectTarget,
    identity: ProcessIdentity,
    decision: EndpointDecision,
    error: unknown,
  ): void {
    emitOcsf(this.options.logger, {
      class: "NET",
      activity: "FAIL",
      severity: "LOW",
      message: `${identity.label} -> ${target.host}:${target.port}: upstream connect failed: ${(error as Error).message} [policy:${decision.policyName}]`,
      fields: netFields(target, identity, decision.policyName, (error as Error).message, "CONNECT"),
    });
  }
}

function netFields(
  target: ConnectTarget,
  identity: ProcessIdentity | undefined,
  policy: string | undefined,
  reason: string | undefined,
  mode: string,
) {
  return {
    dst_host: target.host,
    dst_port: target.port,
    pid: identity?.pid,
    binary: identity?.path,
    ancestors: identity?.ancestors,
    policy,
    reason,
    proxy_mode: mode,
  };
}

/** Reads up to the end of the head; "too-large" past 8192 bytes; undefined if the client left. */
function readHead(socket: Socket): Promise<RequestHead | "too-large" | undefined> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => finish(undefined), HEAD_TIMEOUT_MS);
    const finish = (result: RequestHead | "too-large" | undefined) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.pause();
      resolve(result);
    };
    const onEnd = () => finish(undefined);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end === -1) {
        if (buffered.length > MAX_REQUEST_HEAD_BYTES) finish("too-large");
        return;
      }
      if (end + 4 > MAX_REQUEST_HEAD_BYTES) return finish("too-large");
      const lines = buffered.subarray(0, end).toString("latin1").split("\r\n");
      const [method = "", target = "", version = ""] = (lines[0] ?? "").split(" ");
      if (!method || !target || !/^HTTP\/1\.[01]$/.test(version)) {
        finish({ method: "", target: "", version: "", headerLines: [], rest: Buffer.alloc(0) });
        return;
      }
      finish({
        method: method.toUpperCase(),
        target,
        version,
        headerLines: lines.slice(1),
        rest: buffered.subarray(end + 4),
      });
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onEnd);
  });
}

/** `host:port` or `[v6]:port` (port required unless `defaultPort`). */
function parseAuthority(authority: string, defaultPort: number | undefined): ConnectTarget | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s/]+))(?::(\d{1,5}))?$/.exec(authority);
  if (!match) return undefined;
  const host = (match[1] ?? match[2] ?? "").toLowerCase().replace(/\.$/, "");
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (!host || port === undefined || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

async function resolveAll(host: string): Promise<string[]> {
  const records = await lookup(host, { all: true, verbatim: true });
  return records.map((record) => record.address);
}

/** Connects to the first address that answers. */
async function dial<T>(
  addresses: string[],
  port: number,
  beforeDial: EgressProxyOptions["beforeDial"],
  connect: (address: string, port: number) => Promise<T>,
): Promise<T> {
  let lastError: unknown = new Error("no address");
  for (const address of addresses) {
    try {
      await beforeDial?.(address, port);
      return await connect(address, port);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

const connectForRelay = (address: string, port: number) =>
  RelayUpstream.connect(address, port, UPSTREAM_CONNECT_TIMEOUT_MS);

function policyDenied(target: ConnectTarget): string {
  return JSON.stringify({
    error: "policy_denied",
    detail: `CONNECT ${target.host}:${target.port} not permitted by policy`,
  });
}

function respondJson(client: Socket, status: number, body: string): void {
  const text = status === 403 ? "Forbidden" : "Error";
  client.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** A whole plain-text HTTP/1.1 response after which the connection closes (the proxy's and the L7 stage's). */
export function plainTextResponse(status: number, text: string, body: string): string {
  return `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

function respond(client: Socket, status: number, text: string, body: string): void {
  client.end(plainTextResponse(status, text, body));
}
