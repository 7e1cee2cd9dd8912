// Egress proxy benchmarks for issue 13 ("Measure"). Host as root: a real sandbox network namespace
// (the supervisor's SandboxNetwork: veth, nftables, bypass monitor) and the supervisor's
// EgressProxy on its host side, wired the way the supervisor's host tests wire them, with an L4
// policy that allows curl and python3 to an HTTP and an HTTPS server this bench runs (in a child
// process) on the host, and an L7 rule (`protocol: rest`, GET allowed: TLS terminated with the
// sandbox CA, every request checked) for a second HTTPS port of the same server. Clients run inside
// the namespace as nobody (`ip netns exec … setpriv`).
// Baseline in the same run: the same curl, as nobody, in a second namespace with a plain veth route
// to the same servers (no proxy, no nftables).
//  1. bulk download of N MiB: HTTPS through CONNECT (L4 and L7) and plain HTTP through the forward
//     path, each against the same download direct (goals >= 0.8 of direct for L4, >= 0.5 for L7);
//  2. added latency per small request (p50/p99): keep-alive (one curl, many URLs: the CONNECT tunnel
//     is reused; with L7 every request is checked) and a new connection per request (HTTPS L4 and
//     L7, plain HTTP), each vs direct (goal: p50 < 2 ms added);
//  3. proxy RSS with 100 idle CONNECT tunnels open, then 100 L7 connections (TLS terminated, one
//     request done on each) vs the proxy idle (measured first, before the bulk downloads grow the
//     heap; printed last).
// Usage: bash bench/run.sh proxy-bench.ts [--mib 256] [--runs 5] [--requests 600] [--rounds 3] [--tunnels 100]
//   [--netns-ehash N]  (the sandbox namespace gets a TCP hash table of N buckets of its own)
//   [--paths https-l7,http-proxy,...]  (bulk paths besides direct, e.g. to profile one; default all)
import { execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { parsePolicyYaml } from "@openshell/policy";
import type { EgressProxy } from "@openshell/sandbox-supervisor/network/egress-proxy";
import { createL7Stage } from "@openshell/sandbox-supervisor/network/l7-stage";
import { createNetworkDecisions } from "@openshell/sandbox-supervisor/network/network-decisions";
import { SandboxCa } from "@openshell/sandbox-supervisor/network/sandbox-ca";
import {
  captureLogger,
  createTestNetwork,
  startTestProxy,
} from "@openshell/sandbox-supervisor/test/network-harness";
import { makeTestPki } from "@openshell/testing/test-pki";
import { cpuMs, rssMiB } from "./proc-stats.js";
import { median, quantile } from "./stats.js";

const execFileAsync = promisify(execFile);

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    runs: { type: "string", default: "5" },
    requests: { type: "string", default: "600" },
    rounds: { type: "string", default: "3" },
    tunnels: { type: "string", default: "100" },
    "netns-ehash": { type: "string" },
    paths: { type: "string" },
  },
});
const MIB = Number(values.mib);
const RUNS = Number(values.runs);
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const TUNNELS = Number(values.tunnels);
/** Gives the sandbox namespace a TCP hash table of its own of this size (see below); unset: shared. */
const NETNS_EHASH = values["netns-ehash"] === undefined ? undefined : Number(values["netns-ehash"]);
/** Bulk paths to run besides `direct` (e.g. `https-l7,https-forwarder`, for a profile); unset: all. */
const BULK_PATHS = values.paths?.split(",");
const CHILD_EHASH_SYSCTL = "/proc/sys/net/ipv4/tcp_child_ehash_entries";

/** In the test PKI's server certificate; the proxy resolves it to the namespace's host address. */
const HOST = "host.openshell.internal";
const TOOL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** The HTTP and HTTPS servers, in their own process (the proxy's event loop is not theirs). */
const SERVER_SCRIPT = `
const http = require("node:http"), https = require("node:https"), fs = require("node:fs");
const [cert, key, ...addresses] = process.argv.slice(1);
const chunk = Buffer.alloc(1 << 20);
function answer(req, res) {
  const bulk = /^\\/bulk\\/(\\d+)$/.exec(req.url);
  if (!bulk) { res.writeHead(200, { "content-length": 3 }); res.end("ok\\n"); return; }
  let left = Number(bulk[1]);
  res.writeHead(200, { "content-length": left * chunk.length, "content-type": "application/octet-stream" });
  const pump = () => {
    while (left > 0) { left--; if (!res.write(chunk)) return void res.once("drain", pump); }
    res.end();
  };
  pump();
}
const tls = { cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
(async () => {
  let httpPort = 0, httpsPort = 0;
  for (const address of addresses) {
    const h = http.createServer(answer);
    await new Promise((ok) => h.listen(httpPort, address, ok));
    httpPort = h.address().port;
    const s = https.createServer(tls, answer);
    await new Promise((ok) => s.listen(httpsPort, address, ok));
    httpsPort = s.address().port;
  }
  const l7 = https.createServer(tls, answer);
  await new Promise((ok) => l7.listen(0, addresses[0], ok));
  process.stdout.write(JSON.stringify({ httpPort, httpsPort, l7Port: l7.address().port }) + "\\n");
})();
`;

/**
 * The ceiling: a plain Node byte forwarder in its own process (what the proxy does per tunnel once
 * a connection is admitted, without the rest), listening on the baseline namespace's host side.
 */
const FORWARDER_SCRIPT = `
const net = require("node:net");
const [listenAddress, targetAddress, ...ports] = process.argv.slice(1);
const out = {};
let pending = ports.length;
for (const port of ports) {
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect(Number(port), targetAddress);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on("error", end);
    upstream.on("error", end);
  });
  server.listen(0, listenAddress, () => {
    out[port] = server.address().port;
    if (--pending === 0) process.stdout.write(JSON.stringify(out) + "\\n");
  });
}
`;

/** A second namespace with a plain route to the host: the no-proxy baseline. */
class DirectNamespace {
  readonly name = `pbdirect-${process.pid % 100_000}`;
  readonly vethHost = `pbdh${process.pid % 100_000}`;
  readonly hostAddress: string;
  readonly address: string;
  constructor() {
    const subnet = 16 + ((process.pid * 11) % 200);
    this.hostAddress = `10.252.${subnet}.1`;
    this.address = `10.252.${subnet}.2`;
  }
  create(): void {
    execFileSync("ip", ["-batch", "-"], {
      env: { PATH: TOOL_PATH },
      input: [
        `netns add ${this.name}`,
        `link add ${this.vethHost} type veth peer name pbds${process.pid % 100_000} netns ${this.name}`,
        `addr add ${this.hostAddress}/24 dev ${this.vethHost}`,
        `link set ${this.vethHost} up`,
        "",
      ].join("\n"),
    });
    execFileSync("ip", ["-n", this.name, "-batch", "-"], {
      env: { PATH: TOOL_PATH },
      input: [
        "link set lo up",
        `addr add ${this.address}/24 dev pbds${process.pid % 100_000}`,
        `link set pbds${process.pid % 100_000} up`,
        "",
      ].join("\n"),
    });
  }
  destroy(): void {
    for (const args of [
      ["netns", "delete", this.name],
      ["link", "delete", this.vethHost],
    ]) {
      try {
        execFileSync("ip", args, { env: { PATH: TOOL_PATH }, stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  }
}

/** Runs `command` in namespace `netns` as nobody; stdout. */
async function asNobody(netns: string, command: string[], env: Record<string, string>): Promise<string> {
  const { stdout } = await execFileAsync(
    "ip",
    ["netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", ...command],
    { env: { PATH: TOOL_PATH, HOME: "/tmp", ...env }, timeout: 600_000, maxBuffer: 64 << 20 },
  );
  return stdout;
}

const fmtRate = (xs: number[]) =>
  `${median(xs).toFixed(0)} [${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}] MB/s`;
const fmtLatency = (xs: number[]) =>
  `p50 ${median(xs).toFixed(2)} ms, p99 ${quantile(xs, 0.99).toFixed(2)} ms (n=${xs.length})`;

async function main() {
  if (process.getuid?.() !== 0) throw new Error("proxy-bench needs root (network namespaces)");
  const { logger, lines } = captureLogger();
  const pkiDir = mkdtempSync(join(tmpdir(), "proxy-bench-"));
  const direct = new DirectNamespace();
  let network: Awaited<ReturnType<typeof createTestNetwork>> | undefined;
  let proxy: EgressProxy | undefined;
  let servers: ReturnType<typeof spawn> | undefined;
  let forwarder: ReturnType<typeof spawn> | undefined;
  try {
    console.log(
      `# proxy-bench  node ${process.version}  ${MIB} MiB x ${RUNS} runs, ${REQUESTS} requests x ${ROUNDS} rounds, ${TUNNELS} tunnels${NETNS_EHASH === undefined ? "" : `, namespace TCP hash ${NETNS_EHASH}`}  (${new Date().toISOString()}, load ${(
        await import("node:os")
      )
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")})`,
    );
    const pki = await makeTestPki(pkiDir);
    chmodSync(pkiDir, 0o755); // curl runs as nobody
    chmodSync(pki.ca, 0o644);
    // The sandbox CA, as the supervisor makes it at start; its files in the bench's own directory.
    const ca = await SandboxCa.create();
    const tlsDir = join(pkiDir, "openshell-tls");
    await ca.writeFiles(tlsDir);
    const sandboxCaFile = join(tlsDir, "openshell-ca.pem");
    // Process identity reads the namespace's /proc/<pid>/net/tcp once per connection; the kernel
    // walks every bucket of the namespace's TCP hash table for it, which by default is the host's
    // (262144 buckets here: ~5-13 ms a read). `--netns-ehash N` sets net.ipv4.tcp_child_ehash_entries
    // (kernel >= 6.1, read when a namespace is created) to N for the sandbox namespace's creation
    // only, then puts the host's value back: what the supervisor would get by setting it.
    const previousEhash = NETNS_EHASH === undefined ? undefined : readFileSync(CHILD_EHASH_SYSCTL, "utf8");
    try {
      if (NETNS_EHASH !== undefined) writeFileSync(CHILD_EHASH_SYSCTL, `${NETNS_EHASH}\n`);
      network = await createTestNetwork(logger, 3128, tlsDir);
    } finally {
      if (previousEhash !== undefined) writeFileSync(CHILD_EHASH_SYSCTL, previousEhash);
    }
    direct.create();
    const sandbox = network;
    servers = spawn(
      process.execPath,
      ["-e", SERVER_SCRIPT, pki.serverCert, pki.serverKey, sandbox.hostAddress, direct.hostAddress],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const { httpPort, httpsPort, l7Port } = await new Promise<{
      httpPort: number;
      httpsPort: number;
      l7Port: number;
    }>((ready, reject) => {
      servers?.stdout?.once("data", (d: Buffer) => ready(JSON.parse(String(d))));
      servers?.once("exit", (code) => reject(new Error(`servers exited ${code}`)));
    });
    forwarder = spawn(
      process.execPath,
      ["-e", FORWARDER_SCRIPT, direct.hostAddress, sandbox.hostAddress, String(httpPort), String(httpsPort)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const forwarded = await new Promise<Record<string, number>>((ready, reject) => {
      forwarder?.stdout?.once("data", (d: Buffer) => ready(JSON.parse(String(d))));
      forwarder?.once("exit", (code) => reject(new Error(`forwarder exited ${code}`)));
    });
    const decisions = createNetworkDecisions(
      parsePolicyYaml(`version: 1
network_policies:
  bench:
    name: bench
    endpoints:
      - host: ${HOST}
        ports: [${httpPort}, ${httpsPort}]
        allowed_ips: ["${sandbox.hostAddress}"]
      - host: ${HOST}
        port: ${l7Port}
        protocol: rest
        enforcement: enforce
        allowed_ips: ["${sandbox.hostAddress}"]
        rules:
          - allow: { method: GET, path: "/**" }
    binaries:
      - { path: /usr/bin/curl }
      - { path: /usr/bin/python3* }
`),
    );
    proxy = await startTestProxy(sandbox, logger, {
      decisions: () => decisions,
      hosts: { [HOST]: [sandbox.hostAddress] },
      // The supervisor's stage: L4 endpoints get the raw relay, `protocol: rest` ones TLS/L7.
      tunnelStage: createL7Stage({ logger, ca, upstreamCa: [readFileSync(pki.ca, "utf8")] }),
    });
    const idleRssAtStart = rssMiB(process.pid);

    const proxyEnv = sandbox.childEnvironment();
    const resolveDirect = [
      "--resolve",
      `${HOST}:${httpPort}:${direct.hostAddress}`,
      "--resolve",
      `${HOST}:${httpsPort}:${direct.hostAddress}`,
    ];
    const viaForwarder = [httpPort, httpsPort].flatMap((port) => [
      "--connect-to",
      `${HOST}:${port}:${direct.hostAddress}:${forwarded[port]}`,
    ]);
    type Through = "proxy" | "l7" | "direct" | "forwarder";
    const curl = (through: Through, args: string[]) =>
      through === "proxy" || through === "l7"
        ? asNobody(
            sandbox.name,
            // L7: the client sees the proxy's leaf, signed by the sandbox CA.
            ["curl", "-sS", "--cacert", through === "l7" ? sandboxCaFile : pki.ca, ...args],
            proxyEnv,
          )
        : asNobody(
            direct.name,
            [
              "curl",
              "-sS",
              "--noproxy",
              "*",
              "--cacert",
              pki.ca,
              ...(through === "direct" ? resolveDirect : viaForwarder),
              ...args,
            ],
            {},
          );
    const url = (scheme: "http" | "https", path: string, through?: Through) =>
      `${scheme}://${HOST}:${scheme === "http" ? httpPort : through === "l7" ? l7Port : httpsPort}${path}`;

    // Warm-up: every path once (the first CONNECT hashes curl's binary for trust-on-first-use, the
    // first L7 connection makes the leaf and OpenSSL's first server context).
    for (const through of ["proxy", "l7", "direct", "forwarder"] as const) {
      for (const scheme of through === "l7" ? (["https"] as const) : (["http", "https"] as const)) {
        const body = await curl(through, [url(scheme, "/small", through)]);
        if (body !== "ok\n")
          throw new Error(`${through} ${scheme}: unexpected answer ${JSON.stringify(body)}`);
      }
    }

    // 3. RSS with idle tunnels, first (before the bulk downloads grow the heap).
    await new Promise((r) => setTimeout(r, 2000));
    const idleRss = rssMiB(process.pid);
    const idleHeap = process.memoryUsage().heapUsed / 1048576;
    /** Opens `TUNNELS` connections through the proxy from python3 in the namespace; RSS and heap with them open. */
    const holdConnections = async (l7: boolean) => {
      const holder = spawn(
        "ip",
        [
          "netns",
          "exec",
          sandbox.name,
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "--",
          "python3",
          "-c",
          `import socket, ssl, sys
port = ${l7 ? l7Port : httpsPort}
context = ssl.create_default_context(cafile="${sandboxCaFile}")
socks = []
for i in range(${TUNNELS}):
    s = socket.create_connection(("${sandbox.hostAddress}", ${sandbox.proxyPort}))
    s.sendall(b"CONNECT ${HOST}:%d HTTP/1.1\\r\\nHost: ${HOST}:%d\\r\\n\\r\\n" % (port, port))
    answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    if ${l7 ? "True" : "False"}:
        s = context.wrap_socket(s, server_hostname="${HOST}")
        s.sendall(b"GET /small HTTP/1.1\\r\\nHost: ${HOST}\\r\\n\\r\\n")
        answer = b""
        while not answer.endswith(b"ok\\n"):
            answer += s.recv(4096)
    socks.append(s)
print("open", len(socks), flush=True)
sys.stdin.read()`,
        ],
        { env: { PATH: TOOL_PATH, HOME: "/tmp" }, stdio: ["pipe", "pipe", "inherit"] },
      );
      try {
        await new Promise<void>((ready, reject) => {
          holder.stdout?.once("data", (d: Buffer) =>
            String(d).startsWith("open") ? ready() : reject(new Error(String(d))),
          );
          holder.once("exit", (code) => reject(new Error(`connection holder exited ${code}`)));
        });
        await new Promise((r) => setTimeout(r, 2000));
        return { rss: rssMiB(process.pid), heap: process.memoryUsage().heapUsed / 1048576 };
      } finally {
        const exited = new Promise((r) => holder.once("exit", r));
        holder.stdin?.end();
        if (holder.exitCode === null) await exited;
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    const tunnels = await holdConnections(false);
    const tunnelsRss = tunnels.rss;
    const tunnelsHeap = tunnels.heap;
    const l7Connections = await holdConnections(true);
    const rssReport = [
      `  idle (after one request of each kind)  : ${idleRss.toFixed(1)} MiB RSS, JS heap used ${idleHeap.toFixed(1)} MiB`,
      `  ${TUNNELS} idle CONNECT tunnels open          : ${tunnelsRss.toFixed(1)} MiB RSS (+${(tunnelsRss - idleRss).toFixed(1)} MiB, ${(((tunnelsRss - idleRss) * 1024) / TUNNELS).toFixed(0)} KiB per tunnel), JS heap used ${tunnelsHeap.toFixed(1)} MiB (+${(((tunnelsHeap - idleHeap) * 1024) / TUNNELS).toFixed(0)} KiB per tunnel)`,
      `  ${TUNNELS} L7 connections open (TLS, 1 GET) : ${l7Connections.rss.toFixed(1)} MiB RSS (+${(l7Connections.rss - idleRss).toFixed(1)} MiB, ${(((l7Connections.rss - idleRss) * 1024) / TUNNELS).toFixed(0)} KiB per connection), JS heap used ${l7Connections.heap.toFixed(1)} MiB (+${(((l7Connections.heap - idleHeap) * 1024) / TUNNELS).toFixed(0)} KiB per connection)`,
    ];
    lines.length = 0;

    // 1. Bulk.
    const bulk: Record<string, number[]> = {};
    /** CPU ms per MiB moved: of the relaying process, and of the server (the same work on every path). */
    const relayCpu: Record<string, number[]> = {};
    const serverCpu: Record<string, number[]> = {};
    const add = (table: Record<string, number[]>, key: string, xs: number[]) => {
      table[key] = [...(table[key] ?? []), ...xs];
    };
    for (let run = 0; run < RUNS; run++) {
      for (const scheme of ["https", "http"] as const) {
        const paths =
          scheme === "https"
            ? (["direct", "proxy", "l7", "forwarder"] as const)
            : (["direct", "proxy", "forwarder"] as const);
        for (const through of paths) {
          if (through !== "direct" && BULK_PATHS && !BULK_PATHS.includes(`${scheme}-${through}`)) continue;
          // The relaying process: the proxy is this process, the forwarder its own.
          const relayer =
            through === "forwarder" ? forwarder?.pid : through === "direct" ? undefined : process.pid;
          const cpuBefore = relayer === undefined ? 0 : cpuMs(relayer);
          const serverCpuBefore = cpuMs(servers.pid as number);
          const out = await curl(through, [
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_total}",
            url(scheme, `/bulk/${MIB}`, through),
          ]);
          const [size, seconds] = out.trim().split(" ").map(Number);
          if (size !== MIB * 1048576) throw new Error(`${through} ${scheme}: ${size} bytes`);
          add(bulk, `${scheme} ${through}`, [size / 1e6 / (seconds as number)]);
          add(serverCpu, `${scheme} ${through}`, [(cpuMs(servers.pid as number) - serverCpuBefore) / MIB]);
          if (relayer !== undefined)
            add(relayCpu, `${scheme} ${through}`, [(cpuMs(relayer) - cpuBefore) / MIB]);
        }
      }
      lines.length = 0;
    }
    console.log("\n1. bulk download, curl as nobody in the namespace (MB/s, p50 [min–max] over runs)");
    for (const scheme of ["https", "http"] as const) {
      const d = bulk[`${scheme} direct`] ?? [];
      const p = bulk[`${scheme} proxy`] ?? [];
      const how = scheme === "https" ? "CONNECT tunnel (L4)" : "forward path (absolute-form)";
      console.log(`  ${scheme.padEnd(5)} direct                      : ${fmtRate(d)}`);
      const f = bulk[`${scheme} forwarder`] ?? [];
      console.log(
        `  ${scheme.padEnd(5)} ${how.padEnd(28)}: ${fmtRate(p)}  ratio ${(median(p) / median(d)).toFixed(2)}`,
      );
      if (scheme === "https") {
        const l = bulk["https l7"] ?? [];
        console.log(
          `  https L7 (TLS terminated, rest rule): ${fmtRate(l)}  ratio ${(median(l) / median(d)).toFixed(2)}`,
        );
      }
      console.log(
        `  ${scheme.padEnd(5)} plain Node forwarder (ceiling): ${fmtRate(f)}  ratio ${(median(f) / median(d)).toFixed(2)}`,
      );
    }

    console.log(
      "\n   CPU per MiB moved (ms, p50 over runs; /proc/<pid>/stat, 10 ms ticks): relaying process vs the server",
    );
    for (const key of Object.keys(relayCpu)) {
      const forwarderKey = `${key.split(" ")[0]} forwarder`;
      const ratio = key.endsWith("forwarder")
        ? ""
        : `  ${(median(relayCpu[key] ?? []) / median(relayCpu[forwarderKey] ?? [])).toFixed(2)}x the forwarder`;
      console.log(
        `  ${key.padEnd(16)}: relay ${median(relayCpu[key] ?? []).toFixed(2)}${ratio}; server ${median(serverCpu[key] ?? []).toFixed(2)} (direct: ${median(serverCpu[`${key.split(" ")[0]} direct`] ?? []).toFixed(2)})`,
      );
    }

    // 2. Latency per small request.
    const variants = [
      { key: "https keep-alive", scheme: "https", close: false, paths: ["direct", "proxy", "l7"] },
      { key: "https new connection", scheme: "https", close: true, paths: ["direct", "proxy", "l7"] },
      { key: "http new connection", scheme: "http", close: true, paths: ["direct", "proxy"] },
    ] as const;
    const latency: Record<string, number[]> = {};
    const perRound = Math.ceil(REQUESTS / ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of variants) {
        for (const through of variant.paths) {
          const args = ["-w", "\\nT %{time_total} %{num_connects}\\n"];
          if (variant.close) args.push("-H", "Connection: close");
          for (let i = 0; i < perRound; i++) args.push(url(variant.scheme, "/small", through));
          const out = await curl(through, args);
          const samples = out
            .split("\n")
            .filter((l) => l.startsWith("T "))
            .map((l) => l.split(" ").map(Number));
          if (samples.length !== perRound)
            throw new Error(`${variant.key} ${through}: ${samples.length} answers`);
          // keep-alive: the first transfer opens the connection; the rest reuse it.
          const kept = variant.close ? samples : samples.slice(1);
          if (!variant.close && kept.some((s) => s[2] !== 0))
            throw new Error(`${variant.key} ${through}: reconnected`);
          add(
            latency,
            `${variant.key} ${through}`,
            kept.map((s) => (s[1] as number) * 1000),
          );
        }
      }
      lines.length = 0;
    }
    console.log("\n2. small request (3-byte body), curl's time_total per transfer");
    for (const variant of variants) {
      const d = latency[`${variant.key} direct`] ?? [];
      console.log(`  ${variant.key.padEnd(21)} direct : ${fmtLatency(d)}`);
      for (const through of variant.paths.slice(1)) {
        const p = latency[`${variant.key} ${through}`] ?? [];
        console.log(
          `  ${variant.key.padEnd(21)} ${through === "l7" ? "L7   " : "proxy"}  : ${fmtLatency(p)}  added p50 ${(median(p) - median(d)).toFixed(2)} ms, p99 ${(quantile(p, 0.99) - quantile(d, 0.99)).toFixed(2)} ms`,
        );
      }
    }

    console.log(
      "\n3. proxy process memory (the bench process: the proxy, the namespace's handles, the logger)",
    );
    console.log(`  at start                               : ${idleRssAtStart.toFixed(1)} MiB RSS`);
    for (const line of rssReport) console.log(line);
    console.log(`  after 1. and 2.                        : ${rssMiB(process.pid).toFixed(1)} MiB RSS`);

    console.log(
      `\n${JSON.stringify({
        mib: MIB,
        bulk: Object.fromEntries(Object.entries(bulk).map(([k, v]) => [k, Number(median(v).toFixed(1))])),
        relayCpuMsPerMiB: Object.fromEntries(
          Object.entries(relayCpu).map(([k, v]) => [k, Number(median(v).toFixed(3))]),
        ),
        latencyP50: Object.fromEntries(
          Object.entries(latency).map(([k, v]) => [k, Number(median(v).toFixed(3))]),
        ),
        latencyP99: Object.fromEntries(
          Object.entries(latency).map(([k, v]) => [k, Number(quantile(v, 0.99).toFixed(3))]),
        ),
        rss: {
          start: idleRssAtStart,
          idle: idleRss,
          tunnels: tunnelsRss,
          l7Connections: l7Connections.rss,
          idleHeap,
          tunnelsHeap,
          l7ConnectionsHeap: l7Connections.heap,
        },
      })}`,
    );
  } finally {
    await proxy?.close();
    servers?.kill();
    forwarder?.kill();
    await network?.destroy();
    direct.destroy();
    rmSync(pkiDir, { recursive: true, force: true });
  }
}

await main();
