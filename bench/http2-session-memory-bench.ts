// Issue 18: what one idle HTTP/2 connection costs a Node server, without the gateway around it.
// A server process (as the gateway builds its listener: h2c through a JS Duplex, h2c on the
// native socket, or TLS handed to the HTTP/2 server) takes N connections from a client process,
// each idle or holding one open bidi stream; the server's RSS and smaps before and after give the
// cost per connection, for each variant.
// Usage: bash bench/run.sh http2-session-memory-bench.ts [--sessions 100] [--variants h2c-duplex,tls,...]

import { execFileSync, fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    role: { type: "string", default: "main" },
    sessions: { type: "string", default: "100" },
    variants: { type: "string", default: "" },
    streams: { type: "string", default: "0,1" },
    // Set by the main process for its server and client children.
    pki: { type: "string", default: "" },
    port: { type: "string", default: "0" },
    stream: { type: "boolean", default: false },
  },
});

/**
 * transport × settings: `-wide` is the gateway's 4 MiB stream / 8 MiB connection window; `-lean`
 * the smallest nghttp2 settings (no HPACK dynamic tables, 8 KiB header lists, 16 streams).
 */
const ALL_VARIANTS = ["h2c-native", "h2c-duplex", "tls", "mtls", "h2c-duplex-wide", "tls-wide"];

interface Variant {
  /** mtls: TLS with a client certificate the server verifies, as supervisors connect. */
  transport: "h2c-native" | "h2c-duplex" | "tls" | "mtls";
  wide: boolean;
  lean: boolean;
}

function parseVariant(name: string): Variant {
  return {
    transport: name.replace(/-(wide|lean)$/, "") as Variant["transport"],
    wide: name.endsWith("-wide"),
    lean: name.endsWith("-lean"),
  };
}

function memory(): Record<string, number> {
  const status = readFileSync("/proc/self/status", "utf8");
  const kib = (field: string, text: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  const rollup = readFileSync("/proc/self/smaps_rollup", "utf8");
  const usage = process.memoryUsage();
  return {
    rss: kib("VmRSS", status),
    anon: kib("Anonymous", rollup),
    heapUsed: usage.heapUsed / 1024,
    heapTotal: usage.heapTotal / 1024,
    external: usage.external / 1024,
    arrayBuffers: usage.arrayBuffers / 1024,
  };
}

function replayingDuplex(socket: net.Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback);
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
  return duplex;
}

async function server(variant: Variant, pki: { cert: string; key: string }): Promise<void> {
  const streams: http2.ServerHttp2Stream[] = [];
  const lean: http2.ServerOptions = {
    maxDeflateDynamicTableSize: 0,
    maxSessionMemory: 1,
    peerMaxConcurrentStreams: 16,
    settings: { headerTableSize: 0, maxHeaderListSize: 8192, maxConcurrentStreams: 16 },
  };
  const h2 = http2.createServer(
    variant.wide ? { settings: { initialWindowSize: 4 * 1024 * 1024 } } : variant.lean ? lean : {},
  );
  h2.on("session", (session) => {
    if (variant.wide) session.once("connect", () => session.setLocalWindowSize(8 * 1024 * 1024));
  });
  h2.on("stream", (stream) => {
    streams.push(stream);
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
  });
  let listener: net.Server;
  if (variant.transport === "tls" || variant.transport === "mtls") {
    // mtls: the self-signed certificate is also the client's, and the server's only trusted CA.
    const clientAuth =
      variant.transport === "mtls" ? { requestCert: true, rejectUnauthorized: true, ca: pki.cert } : {};
    listener = tls.createServer({ ...pki, ...clientAuth, noDelay: true, ALPNProtocols: ["h2"] }, (socket) =>
      h2.emit("connection", socket),
    );
  } else if (variant.transport === "h2c-duplex") {
    listener = net.createServer({ noDelay: true }, (socket) => {
      socket.once("data", (head) => h2.emit("connection", replayingDuplex(socket, head)));
    });
  } else {
    listener = net.createServer({ noDelay: true }, (socket) => h2.emit("connection", socket));
  }
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  process.on("message", (message: string) => {
    globalThis.gc?.();
    process.send?.({ message, memory: memory(), streams: streams.length });
  });
  process.send?.({ port: (listener.address() as net.AddressInfo).port });
}

async function client(
  variant: Variant,
  port: number,
  sessions: number,
  withStream: boolean,
  pki: { cert: string; key: string },
): Promise<void> {
  const held: unknown[] = [];
  for (let i = 0; i < sessions; i++) {
    const secure = variant.transport === "tls" || variant.transport === "mtls";
    const authority = `${secure ? "https" : "http"}://127.0.0.1:${port}`;
    const session = http2.connect(authority, {
      rejectUnauthorized: false,
      ...(variant.transport === "mtls" ? pki : {}),
      ...(variant.wide ? { settings: { initialWindowSize: 4 * 1024 * 1024 } } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("error", reject);
    });
    if (withStream) {
      const stream = session.request({
        ":method": "POST",
        ":path": "/x",
        "content-type": "application/grpc",
      });
      await new Promise((resolve) => stream.once("response", resolve));
      held.push(stream);
    }
    held.push(session);
  }
  process.send?.({ ready: true });
  setInterval(() => held.length, 1 << 30);
}

type Reply = Record<string, unknown>;

function child(args: string[]): { proc: ReturnType<typeof fork>; next: () => Promise<Reply> } {
  const proc = fork(process.argv[1] as string, args, { execArgv: ["--expose-gc"], stdio: "inherit" });
  const queue: Reply[] = [];
  const waiting: ((reply: Reply) => void)[] = [];
  proc.on("message", (reply: Reply) => {
    const waiter = waiting.shift();
    if (waiter) waiter(reply);
    else queue.push(reply);
  });
  const next = () => {
    const queued = queue.shift();
    return queued ? Promise.resolve(queued) : new Promise<Reply>((resolve) => waiting.push(resolve));
  };
  return { proc, next };
}

async function measure(name: string, sessions: number, withStream: boolean, pkiDir: string): Promise<void> {
  const srv = child(["--role", "server", "--variants", name, "--pki", pkiDir]);
  const { port } = (await srv.next()) as { port: number };
  // Warm the server (first connection: TLS context, nghttp2 and JS code paths) before the baseline.
  const warm = child([
    "--role",
    "client",
    "--variants",
    name,
    "--sessions",
    "1",
    "--port",
    String(port),
    "--pki",
    pkiDir,
    "--stream",
  ]);
  await warm.next();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  srv.proc.send("before");
  const before = ((await srv.next()) as { memory: Record<string, number> }).memory;
  const cli = child([
    "--role",
    "client",
    "--variants",
    name,
    "--sessions",
    String(sessions),
    "--port",
    String(port),
    "--pki",
    pkiDir,
    ...(withStream ? ["--stream"] : []),
  ]);
  await cli.next();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  srv.proc.send("after");
  const after = ((await srv.next()) as { memory: Record<string, number> }).memory;
  const per = (key: string) => (((after[key] ?? 0) - (before[key] ?? 0)) / sessions).toFixed(1);
  console.log(
    `${name.padEnd(16)} ${withStream ? "1 stream " : "no stream"}  per connection (KiB): RSS ${per("rss").padStart(6)}  anon ${per("anon").padStart(6)}  heapUsed ${per("heapUsed").padStart(5)}  external ${per("external").padStart(5)}  arrayBuffers ${per("arrayBuffers").padStart(5)}   (server RSS ${((before.rss ?? 0) / 1024) | 0} → ${((after.rss ?? 0) / 1024) | 0} MiB)`,
  );
  for (const p of [cli.proc, warm.proc, srv.proc]) p.kill("SIGKILL");
}

function readPki(dir: string): { cert: string; key: string } {
  return {
    cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    key: readFileSync(join(dir, "key.pem"), "utf8"),
  };
}

async function main(): Promise<void> {
  if (values.role === "server") {
    await server(parseVariant(values.variants), readPki(values.pki));
    return;
  }
  if (values.role === "client") {
    await client(
      parseVariant(values.variants),
      Number(values.port),
      Number(values.sessions),
      values.stream,
      readPki(values.pki),
    );
    return;
  }
  const sessions = Number(values.sessions);
  const variants = values.variants ? values.variants.split(",") : ALL_VARIANTS;
  const pkiDir = mkdtempSync(join(tmpdir(), "h2mem-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      join(pkiDir, "key.pem"),
      "-out",
      join(pkiDir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  console.log(
    `# http2-session-memory-bench  node ${process.version}  ${sessions} connections per variant  (${new Date().toISOString()})`,
  );
  try {
    for (const name of variants)
      for (const streams of values.streams.split(",")) await measure(name, sessions, streams === "1", pkiDir);
  } finally {
    rmSync(pkiDir, { recursive: true, force: true });
  }
}

await main();
