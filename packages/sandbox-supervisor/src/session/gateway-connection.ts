import { readFileSync } from "node:fs";
import type http2 from "node:http2";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { OpenShell } from "@openshell/proto";
import type { SupervisorTlsFiles } from "../config/supervisor-config.js";

/** Large windows so relays are not throttled by HTTP/2 flow control (see architecture/relays.md). */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES = 8 * 1024 * 1024;
/** Upstream: keepalive every 10 s, 20 s to answer. */
const DEFAULT_KEEPALIVE = { intervalMs: 10_000, timeoutMs: 20_000 } as const;

export interface Keepalive {
  intervalMs: number;
  timeoutMs: number;
}

/** Widens the connection-level window of every HTTP/2 session it opens. */
class WideWindowSessionManager extends Http2SessionManager {
  private readonly widened = new WeakSet<http2.Http2Session>();

  override async request(
    ...args: Parameters<Http2SessionManager["request"]>
  ): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session && !this.widened.has(session)) {
      this.widened.add(session);
      session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      // connect-node destroys a session whose PING timed out with an error after it may have removed
      // its own listeners; an unheard 'error' would kill the supervisor. Streams still see the failure.
      session.on("error", () => {});
    }
    return stream;
  }
}

/**
 * One HTTP/2 connection to the gateway. The session stream, every relay and log shipping share it,
 * so a relay never pays for a new TCP or TLS handshake.
 */
export class GatewayConnection {
  readonly client: Client<typeof OpenShell>;
  private readonly manager: Http2SessionManager;

  constructor(endpoint: URL, tls: SupervisorTlsFiles | undefined, keepalive: Keepalive = DEFAULT_KEEPALIVE) {
    const sessionOptions: http2.SecureClientSessionOptions = {
      settings: { initialWindowSize: STREAM_WINDOW_BYTES },
      ...(tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
    };
    this.manager = new WideWindowSessionManager(
      endpoint.origin,
      // Not pingIdleConnection: connect-node 2.2 then schedules a PING on a destroyed session after
      // its last stream closes and crashes the process (ERR_HTTP2_INVALID_SESSION). The session
      // stream is open whenever the connection is in use, so pings run exactly when needed.
      { pingIntervalMs: keepalive.intervalMs, pingTimeoutMs: keepalive.timeoutMs },
      sessionOptions,
    );
    const transport = createGrpcTransport({
      baseUrl: endpoint.origin,
      sessionManager: this.manager,
      // Relay frames are encrypted SSH bytes: compression only burns CPU.
      acceptCompression: [],
    });
    this.client = createClient(OpenShell, transport);
  }

  /** A raw HTTP/2 stream for `path` on this connection (relays frame their own gRPC messages). */
  openStream(path: string, headers: Record<string, string>): Promise<http2.ClientHttp2Stream> {
    return this.manager.request(
      "POST",
      path,
      { ...headers, "content-type": "application/grpc", te: "trailers", "grpc-accept-encoding": "identity" },
      {},
    );
  }

  close(): void {
    this.manager.abort();
  }
}
