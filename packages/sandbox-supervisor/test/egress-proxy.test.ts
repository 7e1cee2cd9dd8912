import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parsePolicyYaml } from "@openshell/policy";
import { makeTestPki } from "@openshell/testing/test-pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressProxy } from "../src/network/egress-proxy.js";
import { createNetworkDecisions, type NetworkDecisions } from "../src/network/network-decisions.js";
import type { SandboxNetwork } from "../src/network/sandbox-network.js";
import {
  canCreateNamespaces,
  captureLogger,
  createTestNetwork,
  runInNamespace,
  startTestProxy,
} from "./network-harness.js";

/** The test's DNS: names the policy uses, resolved by the proxy to addresses on the host side. */
const NAMES = {
  allowed: "host.openshell.internal", // in the test PKI's server certificate
  other: "other.test",
  metadata: "metadata.test",
  unlisted: "unlisted-ip.test",
  unresolvable: "no-such-name.test",
};

describe.skipIf(!canCreateNamespaces)("egress proxy in a real namespace (curl and python3 as nobody)", () => {
  const { logger, lines } = captureLogger();
  let network: SandboxNetwork;
  let proxy: EgressProxy;
  let http: HttpServer;
  let https: HttpsServer;
  let pkiDir: string;
  let caFile: string;
  let httpPort: number;
  let httpsPort: number;
  let decisions: NetworkDecisions | undefined;

  const policy = (binaries: string[], extra = "") => `version: 1
network_policies:
  host_api:
    name: host-api
    endpoints:
      - host: ${NAMES.allowed}
        ports: [${httpPort}, ${httpsPort}]
        allowed_ips: ["${network.hostAddress}"]
      - { host: ${NAMES.metadata}, port: ${httpsPort}, allowed_ips: ["10.0.0.0/8"] }
      - { host: ${NAMES.unlisted}, port: ${httpsPort} }
      - { host: ${NAMES.unresolvable}, port: ${httpsPort} }
    binaries:
${binaries.map((path) => `      - { path: ${path} }`).join("\n")}
${extra}`;
  const install = (yaml: string) => {
    decisions = createNetworkDecisions(parsePolicyYaml(yaml));
  };
  const curl = (...args: string[]) =>
    runInNamespace(network, [
      "curl",
      "-sS",
      "-m",
      "10",
      "--cacert",
      caFile,
      "-w",
      "\\n%{http_code}",
      ...args,
    ]);

  beforeAll(async () => {
    network = await createTestNetwork(logger);
    proxy = await startTestProxy(network, logger, {
      decisions: () => decisions,
      hosts: {
        [NAMES.metadata]: ["169.254.169.254"],
        [NAMES.allowed]: [network.hostAddress],
        [NAMES.unlisted]: [network.hostAddress],
        [NAMES.other]: [network.hostAddress],
      },
    });
    pkiDir = mkdtempSync(join(tmpdir(), "proxy-test-"));
    const pki = await makeTestPki(pkiDir);
    // curl runs as nobody: the CA must be readable (the PKI writer keeps its directory private).
    chmodSync(pkiDir, 0o755);
    caFile = pki.ca;
    chmodSync(caFile, 0o644);
    const answer = (
      request: { method?: string; url?: string },
      response: import("node:http").ServerResponse,
    ) => response.end(`hello ${request.method} ${request.url}`);
    http = createHttpServer(answer);
    https = createHttpsServer(
      { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) },
      answer,
    );
    await new Promise<void>((resolve) => http.listen(0, network.hostAddress, resolve));
    await new Promise<void>((resolve) => https.listen(0, network.hostAddress, resolve));
    httpPort = (http.address() as { port: number }).port;
    httpsPort = (https.address() as { port: number }).port;
    install(policy(["/usr/bin/curl"]));
  });

  afterAll(async () => {
    await proxy?.close();
    http?.close();
    https?.close();
    await network?.destroy();
    if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
  });

  it("lets curl reach an allowed host over HTTPS (CONNECT) and plain HTTP (absolute form)", async () => {
    const tls = await curl(`https://${NAMES.allowed}:${httpsPort}/v1/data`);
    expect(tls.stdout).toBe("hello GET /v1/data\n200");
    const plain = await curl(`http://${NAMES.allowed}:${httpPort}/plain?x=1`);
    expect(plain.stdout).toBe("hello GET /plain?x=1\n200");
    const allowed = lines.find((line) => String(line.msg).startsWith("NET:OPEN [INFO] ALLOWED curl("));
    expect(allowed?.msg).toMatch(new RegExp(`-> ${NAMES.allowed}:${httpsPort} \\[policy:host-api`));
    expect(allowed?.binary).toBe("/usr/bin/curl");
  });

  it("answers a host not in the policy with the 403 JSON and logs the reason", async () => {
    const denied = await curl(`http://${NAMES.other}:${httpPort}/`);
    expect(denied.stdout).toBe(
      `{"error":"policy_denied","detail":"CONNECT ${NAMES.other}:${httpPort} not permitted by policy"}\n403`,
    );
    const tunnel = await curl(`https://${NAMES.other}:${httpsPort}/`);
    expect(tunnel.code).toBe(56); // curl: CONNECT refused
    expect(tunnel.stderr).toMatch(/403/);
    const event = lines.find(
      (line) => String(line.msg).startsWith("NET:REFUSE") && line.dst_host === NAMES.other,
    );
    expect(event?.msg).toMatch(/curl\(\d+\) -> other\.test:\d+ \[policy:- reason:.*not in policy/);
  });

  it("an allowed host whose name does not resolve gets 502, logged with the rule that allowed it", async () => {
    const failed = await curl(`https://${NAMES.unresolvable}:${httpsPort}/`);
    expect(failed.code).toBe(56);
    expect(failed.stderr).toMatch(/502/);
    const event = lines.find(
      (line) => String(line.msg).startsWith("NET:FAIL") && line.dst_host === NAMES.unresolvable,
    );
    expect(event?.msg).toMatch(
      /curl\(\d+\) -> no-such-name\.test:\d+: DNS resolution failed: ENOTFOUND no-such-name\.test \[policy:host-api\]$/,
    );
  });

  it("denies a binary the policy does not name while curl is allowed, and a policy change applies to the next connection", async () => {
    const script = `import urllib.request, urllib.error
try:
    print(urllib.request.urlopen("http://${NAMES.allowed}:${httpPort}/py", timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())`;
    const denied = await runInNamespace(network, ["python3", "-c", script]);
    expect(denied.stdout.trim()).toBe(
      `403 {"error":"policy_denied","detail":"CONNECT ${NAMES.allowed}:${httpPort} not permitted by policy"}`,
    );
    const event = lines.find(
      (line) => String(line.msg).startsWith("NET:REFUSE") && String(line.binary).includes("python3"),
    );
    expect(event?.msg).toMatch(
      /python3[.\d]*\(\d+\) -> .*\[policy:host-api reason:binary '\/usr\/bin\/python3[.\d]*' not allowed/,
    );
    install(policy(["/usr/bin/curl", "/usr/bin/python3*"]));
    const allowed = await runInNamespace(network, ["python3", "-c", script]);
    expect(allowed.stdout.trim()).toBe("hello GET /py");
    install(policy(["/usr/bin/curl"]));
  });

  it("refuses 169.254.169.254 always and private addresses unless allowed_ips names them (ssrf_denied)", async () => {
    const metadata = await curl(`https://${NAMES.metadata}:${httpsPort}/`);
    expect(metadata.code).toBe(56);
    const unlisted = await curl("-p", `http://${NAMES.unlisted}:${httpsPort}/`);
    expect(unlisted.code).toBe(56);
    const ssrf = lines.filter((line) => line.ssrf === true).map((line) => line.dst_host);
    expect(ssrf).toEqual(expect.arrayContaining([NAMES.metadata, NAMES.unlisted]));
    // The 403 body, read over a raw connection from inside the namespace.
    const raw = await runInNamespace(network, [
      "python3",
      "-c",
      `import socket; s=socket.create_connection(('${network.hostAddress}', ${network.proxyPort})); s.sendall(b'CONNECT ${NAMES.metadata}:${httpsPort} HTTP/1.1\\r\\n\\r\\n'); print(s.recv(4096).decode())`,
    ]);
    // python3 is not in the policy: the decision denies it before SSRF; curl's view is above.
    expect(raw.stdout).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    install(policy(["/usr/bin/curl", "/usr/bin/python3*"]));
    const body = await runInNamespace(network, [
      "python3",
      "-c",
      `import socket; s=socket.create_connection(('${network.hostAddress}', ${network.proxyPort})); s.sendall(b'CONNECT ${NAMES.metadata}:${httpsPort} HTTP/1.1\\r\\n\\r\\n'); print(s.recv(4096).decode().split('\\r\\n\\r\\n')[1])`,
    ]);
    install(policy(["/usr/bin/curl"]));
    expect(body.stdout.trim()).toBe(
      `{"error":"ssrf_denied","detail":"CONNECT ${NAMES.metadata}:${httpsPort} blocked: allowed_ips check failed"}`,
    );
  });

  it("rejects a connect that ignores the proxy at once and logs it as a bypass", async () => {
    const direct = await curl("--noproxy", "*", `http://${network.hostAddress}:${httpPort}/`);
    expect(direct.code).toBe(7);
    expect(direct.ms).toBeLessThan(3000);
    const started = Date.now();
    while (
      !lines.some((line) => line.reason === "bypass" && line.dst_port === httpPort) &&
      Date.now() - started < 5000
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(lines.some((line) => line.reason === "bypass" && line.dst_port === httpPort)).toBe(true);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "attributes a connection to a process that joined the namespace after the proxy saw it outside, and never to one that left it",
    async () => {
      install(policy(["/usr/bin/curl", "/usr/bin/python3*"]));
      // Root /usr/bin/python3 in the test's namespace; it joins the sandbox's, connects, and (second
      // connection) leaves again before it sends its CONNECT, still holding the socket.
      const connectLine = `b"CONNECT ${NAMES.allowed}:${httpsPort} HTTP/1.1\\r\\n\\r\\n"`;
      const script = `import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
def status(s):
    s.sendall(${connectLine})
    print(s.recv(4096).split(b"\\r\\n")[0].decode(), flush=True)
print("ready", flush=True)
sys.stdin.readline()
assert libc.setns(os.open("${network.netnsPath}", os.O_RDONLY), CLONE_NEWNET) == 0
status(socket.create_connection(("${network.hostAddress}", ${network.proxyPort})))
s = socket.create_connection(("${network.hostAddress}", ${network.proxyPort}))
assert libc.unshare(CLONE_NEWNET) == 0
status(s)
sys.stdin.readline()`;
      const child = spawn("/usr/bin/python3", ["-c", script], { stdio: "pipe" });
      const output = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const next = async () => String((await output.next()).value);
      try {
        expect(await next()).toBe("ready");
        // A connection the proxy attributes while python3 is still outside the namespace.
        expect((await curl(`https://${NAMES.allowed}:${httpsPort}/seen`)).stdout).toBe(
          "hello GET /seen\n200",
        );
        child.stdin.write("go\n");
        expect(await next()).toBe("HTTP/1.1 200 Connection Established");
        const opened = lines.find(
          (line) => String(line.msg).startsWith("NET:OPEN") && line.pid === child.pid,
        );
        expect(opened?.binary).toMatch(/^\/usr\/bin\/python3/);
        expect(await next()).toBe("HTTP/1.1 403 Forbidden");
        const refused = lines.find(
          (line) => String(line.msg).startsWith("NET:REFUSE") && /no process owns/.test(String(line.reason)),
        );
        expect(refused?.msg).toMatch(/^NET:REFUSE \[MEDIUM\] BLOCKED unknown -> /);
      } finally {
        child.kill();
        install(policy(["/usr/bin/curl"]));
      }
    },
  );

  it("answers 431 past 8192 bytes of head, 400 to https:// in absolute form and to nonsense", async () => {
    const exchange = (request: string) =>
      new Promise<string>((resolve) => {
        const socket = createConnection({ host: network.hostAddress, port: network.proxyPort });
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
        });
        socket.on("close", () => resolve(text));
        socket.on("error", () => resolve(text));
        socket.end(request);
      });
    const big = await exchange(`CONNECT a.test:443 HTTP/1.1\r\nX-Pad: ${"a".repeat(9000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    const httpsForward = await exchange(`GET https://${NAMES.allowed}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(httpsForward).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*Use CONNECT for HTTPS URLs/);
    const origin = await exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(origin).toMatch(/^HTTP\/1\.1 400 /);
  });
});
