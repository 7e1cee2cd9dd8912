import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import type { Logger } from "@openshell/core";
import type { TlsFiles } from "../config/gateway-config.js";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface GatewayServerOptions {
  port: number;
  host: string;
  tls: TlsFiles | undefined;
  handler: RequestHandler;
  logger: Logger;
  /** HTTP/1.1 CONNECT requests (the SSH tunnel); without it CONNECT gets 405. */
  onConnect?: (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void;
}

const HTTP2_PREFACE_START = Buffer.from("PRI * HTTP/2.0");
/** Large windows so relayed byte streams are not throttled by HTTP/2 flow control. */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * One TCP port for everything: gRPC, Connect and gRPC-web over HTTP/2, and plain HTTP/1.1 (health,
 * CONNECT /connect/ssh, Connect unary). Plaintext: the first bytes decide (HTTP/2 prior-knowledge
 * preface or HTTP/1.1). TLS: ALPN decides (h2 or http/1.1); client certificates are required unless
 * the config has no client CA.
 */
export class GatewayServer {
  private readonly h2: http2.Http2Server;
  private readonly h1: http.Server;
  private listener: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(private readonly options: GatewayServerOptions) {
    this.h2 = http2.createServer({ settings: { initialWindowSize: STREAM_WINDOW_BYTES } }, options.handler);
    this.h2.on("session", (session) => {
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
      session.once("connect", () => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    });
    this.h1 = http.createServer(options.handler as http.RequestListener);
    this.h1.on("connect", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (options.onConnect) options.onConnect(req, socket, head);
      else socket.end("HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\n\r\n");
    });
  }

  get port(): number {
    const address = this.listener?.address();
    return typeof address === "object" && address ? address.port : this.options.port;
  }

  async listen(): Promise<void> {
    const tlsFiles = this.options.tls;
    const listener = tlsFiles
      ? this.createTlsListener(tlsFiles)
      : net.createServer({ noDelay: true }, (socket) => this.sniff(socket));
    listener.on("connection", (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(this.options.port, this.options.host, () => {
        listener.off("error", reject);
        resolve();
      });
    });
    this.listener = listener;
  }

  /** Stops accepting, asks HTTP/2 peers to go away, and destroys whatever is left after `graceMs`. */
  async close(graceMs: number): Promise<void> {
    const listener = this.listener;
    if (!listener) return;
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const session of this.sessions) session.close();
    this.h1.closeIdleConnections();
    const deadline = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy();
    }, graceMs);
    await closed;
    clearTimeout(deadline);
  }

  private createTlsListener(files: TlsFiles): tls.Server {
    const requireClientCert = files.clientCa !== undefined;
    const server = tls.createServer({
      // Nagle plus delayed ACKs would add ~40 ms to every small relayed write (SSH handshakes).
      noDelay: true,
      cert: readFileSync(files.cert),
      key: readFileSync(files.key),
      ...(requireClientCert ? { ca: readFileSync(files.clientCa as string) } : {}),
      requestCert: requireClientCert,
      rejectUnauthorized: requireClientCert,
      ALPNProtocols: ["h2", "http/1.1"],
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol === "h2") this.h2.emit("connection", socket);
      else this.h1.emit("connection", socket);
    });
    server.on("tlsClientError", (error) =>
      this.options.logger.debug({ err: error.message }, "TLS handshake failed"),
    );
    return server;
  }

  private sniff(socket: net.Socket): void {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, HTTP2_PREFACE_START.length);
      const isH2 = buffered.subarray(0, n).equals(HTTP2_PREFACE_START.subarray(0, n));
      if (isH2 && buffered.length < HTTP2_PREFACE_START.length) return;
      socket.off("data", onData);
      if (isH2) {
        this.h2.emit("connection", replayingDuplex(socket, buffered));
      } else {
        socket.pause();
        socket.unshift(buffered);
        this.h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  }
}

/**
 * A JS Duplex in front of the socket for the HTTP/2 server: it replays the sniffed bytes, then
 * hands nghttp2's frames to the socket corked (one writev per burst). Giving the HTTP/2 server
 * the socket itself also works in Node 24 (its session feeds itself the unshifted bytes), but its
 * native writes cost a syscall per frame: relay-bench (2026-12-01, old/new/old/new) put the
 * gateway at 96–124 syscalls and 4.6–6.1 ms CPU per MiB that way against 44–45 and 3.0–3.3 through
 * this Duplex, bulk 0.59–0.60 of the forwarders against 0.67–0.68.
 */
function replayingDuplex(socket: net.Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback);
    },
    // nghttp2 emits one chunk per HTTP/2 frame; handing them to the socket corked turns a burst
    // into one writev instead of one syscall per 16 KiB frame.
    writev(chunks, callback) {
      socket.cork();
      for (const { chunk } of chunks) socket.write(chunk);
      socket.uncork();
      if (socket.writableNeedDrain) socket.once("drain", () => callback());
      else callback();
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(error, callback) {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  duplex.push(head);
  socket.on("data", (chunk) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("close", () => duplex.destroy());
  socket.on("error", (error) => duplex.destroy(error));
  return duplex;
}
