import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicyYaml } from "@openshell/policy";
import { makeTestPki } from "@openshell/testing/test-pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressProxy } from "../src/network/egress-proxy.js";
import { createL7Stage } from "../src/network/l7-stage.js";
import { createNetworkDecisions, type NetworkDecisions } from "../src/network/network-decisions.js";
import { SandboxCa } from "../src/network/sandbox-ca.js";
import type { SandboxNetwork } from "../src/network/sandbox-network.js";
import {
  canCreateNamespaces,
  captureLogger,
  createTestNetwork,
  runInNamespace,
  startTestProxy,
} from "./network-harness.js";

async function waitForLine(lines: Array<Record<string, unknown>>, pattern: RegExp): Promise<void> {
  const started = Date.now();
  while (!lines.some((line) => pattern.test(String(line.msg)))) {
    if (Date.now() - started > 5000) throw new Error(`no log line matches ${pattern}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** In the test PKI's server certificate, so the upstream check passes against the test CA. */
const HOST = "host.openshell.internal";

describe.skipIf(!canCreateNamespaces)(
  "TLS termination and L7 rules in a real namespace (curl, python3, node as nobody)",
  () => {
    const { logger, lines } = captureLogger();
    let network: SandboxNetwork;
    let proxy: EgressProxy;
    const servers: Server[] = [];
    let workDir: string;
    let testCa: string;
    let tlsDir: string;
    let decisions: NetworkDecisions | undefined;
    const ports = { enforce: 0, audit: 0, skip: 0, plain: 0 };

    const policy = () => `version: 1
network_policies:
  api_enforce:
    name: api-enforce
    endpoints:
      - host: ${HOST}
        ports: [${ports.enforce}, ${ports.plain}]
        protocol: rest
        enforcement: enforce
        allowed_ips: ["${network.hostAddress}"]
        rules:
          - allow: { method: GET, path: "/repos/**" }
          - allow: { method: POST, path: "/upload" }
    binaries: [{ path: /usr/bin/curl }, { path: "/usr/bin/python3*" }, { path: /usr/bin/node }]
  api_audit:
    name: api-audit
    endpoints:
      - host: ${HOST}
        port: ${ports.audit}
        protocol: rest
        enforcement: audit
        allowed_ips: ["${network.hostAddress}"]
        rules:
          - allow: { method: GET, path: "/repos/**" }
    binaries: [{ path: /usr/bin/curl }]
  raw:
    name: raw-tls
    endpoints:
      - host: ${HOST}
        port: ${ports.skip}
        protocol: rest
        tls: skip
        enforcement: enforce
        allowed_ips: ["${network.hostAddress}"]
        rules:
          - allow: { method: GET, path: "/nothing" }
    binaries: [{ path: /usr/bin/curl }]
`;
    const env = () => network.childEnvironment();
    const curl = (...args: string[]) =>
      runInNamespace(network, ["curl", "-sS", "-m", "10", "-w", "\\n%{http_code}", ...args], env());
    const url = (port: number, path: string, scheme = "https") => `${scheme}://${HOST}:${port}${path}`;

    beforeAll(async () => {
      workDir = mkdtempSync(join(tmpdir(), "l7-test-"));
      chmodSync(workDir, 0o755);
      tlsDir = join(workDir, "openshell-tls");
      const ca = await SandboxCa.create();
      ca.writeFiles(tlsDir);
      const pkiDir = join(workDir, "pki");
      mkdirSync(pkiDir);
      const pki = await makeTestPki(pkiDir);
      testCa = readFileSync(pki.ca, "utf8");
      chmodSync(pkiDir, 0o755);
      chmodSync(pki.ca, 0o644);

      network = await createTestNetwork(logger, 3128, tlsDir);
      proxy = await startTestProxy(network, logger, {
        decisions: () => decisions,
        hosts: { [HOST]: [network.hostAddress] },
        tunnelStage: createL7Stage({ logger, ca, upstreamCa: [testCa] }),
      });
      const answer = (request: IncomingMessage, response: ServerResponse) => {
        if (request.url === "/repos/sneaky-101") {
          // A 101 nobody asked for: the server tries to take the connection out of HTTP.
          request.socket.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n",
          );
          return;
        }
        let length = 0;
        request.on("data", (chunk: Buffer) => {
          length += chunk.length;
        });
        request.on("end", () => response.end(`hello ${request.method} ${request.url} ${length}`));
      };
      const tls = { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) };
      for (const name of ["enforce", "audit", "skip", "plain"] as const) {
        const server = name === "plain" ? createHttpServer(answer) : createHttpsServer(tls, answer);
        // An upgrade the client asked for: after the 101 the socket echoes raw bytes.
        server.on("upgrade", (_request: IncomingMessage, socket: import("node:stream").Duplex) => {
          socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
          socket.pipe(socket);
        });
        await new Promise<void>((resolve) => server.listen(0, network.hostAddress, resolve));
        ports[name] = (server.address() as { port: number }).port;
        servers.push(server);
      }
      decisions = createNetworkDecisions(parsePolicyYaml(policy()));
    });

    afterAll(async () => {
      await proxy?.close();
      for (const server of servers) server.close();
      await network?.destroy();
      if (workDir) rmSync(workDir, { recursive: true, force: true });
    });

    it("puts the CA variables in the child environment", () => {
      expect(env()).toMatchObject({
        NODE_EXTRA_CA_CERTS: join(tlsDir, "openshell-ca.pem"),
        SSL_CERT_FILE: join(tlsDir, "ca-bundle.pem"),
        REQUESTS_CA_BUNDLE: join(tlsDir, "ca-bundle.pem"),
        CURL_CA_BUNDLE: join(tlsDir, "ca-bundle.pem"),
        GIT_SSL_CAINFO: join(tlsDir, "ca-bundle.pem"),
      });
    });

    it("enforce: curl's GET is allowed through the MITM leaf (trusted via the CA bundle), POST gets the 403 JSON with X-OpenShell-Policy", async () => {
      const allowed = await curl("-v", url(ports.enforce, "/repos/a/b"));
      expect(allowed.stdout).toBe("hello GET /repos/a/b 0\n200");
      // The certificate curl saw is the sandbox CA's leaf, not the server's own.
      expect(allowed.stderr).toMatch(/issuer: CN=OpenShell Sandbox CA/);
      const denied = await curl("-i", "-X", "POST", "-d", "x=1", url(ports.enforce, "/repos/a/b"));
      // curl -i shows the proxy's CONNECT answer first, then the response inside the tunnel.
      expect(denied.stdout).toMatch(
        /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 403 Forbidden\r\n/,
      );
      expect(denied.stdout).toMatch(/\r\nX-OpenShell-Policy: api_enforce\r\n/i);
      const body = denied.stdout.split("\r\n\r\n")[2]?.replace(/\n403$/, "");
      expect(JSON.parse(body ?? "")).toEqual({
        error: "policy_denied",
        policy: "api_enforce",
        rule: "POST /repos/a/b",
        detail: "POST /repos/a/b not permitted by policy",
      });
      const event = lines.find((line) => String(line.msg).startsWith("HTTP:POST [MEDIUM] BLOCKED curl("));
      expect(event?.msg).toMatch(
        /-> POST https:\/\/host\.openshell\.internal:\d+\/repos\/a\/b \[policy:api-enforce reason:.* mode:enforce\]/,
      );
      expect(lines.some((line) => String(line.msg).startsWith("HTTP:GET [INFO] ALLOWED curl("))).toBe(true);
    });

    it("streams request bodies (Content-Length and chunked) through an allowed rule", async () => {
      const fixed = await curl(
        "-X",
        "POST",
        "--data-binary",
        "a".repeat(100_000),
        url(ports.enforce, "/upload"),
      );
      expect(fixed.stdout).toBe("hello POST /upload 100000\n200");
      const chunked = await curl(
        "-X",
        "POST",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "b".repeat(70_000),
        url(ports.enforce, "/upload"),
      );
      expect(chunked.stdout).toBe("hello POST /upload 70000\n200");
    });

    it("python3 urllib (SSL_CERT_FILE) gets GET through and the 403 on POST", async () => {
      const script = `import urllib.request, urllib.error
for method in ("GET", "POST"):
    try:
        r = urllib.request.urlopen(urllib.request.Request("${url(ports.enforce, "/repos/py")}", method=method, data=b"{}" if method == "POST" else None), timeout=10)
        print(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.headers.get("X-OpenShell-Policy"), e.read().decode())`;
      const result = await runInNamespace(network, ["python3", "-c", script], env());
      const [get, post] = result.stdout.trim().split("\n");
      expect(get).toBe("200 hello GET /repos/py 0");
      expect(post).toMatch(/^403 api_enforce \{"error":"policy_denied"/);
    });

    it("node trusts the MITM certificate through NODE_EXTRA_CA_CERTS", async () => {
      const script = `const http=require("http"),https=require("https"),tls=require("tls");
const p=new URL(process.env.HTTPS_PROXY);
http.request({host:p.hostname,port:p.port,method:"CONNECT",path:"${HOST}:${ports.enforce}"}).on("connect",(res,socket)=>{
  https.get({host:"${HOST}",port:${ports.enforce},path:"/repos/node",createConnection:()=>tls.connect({socket,servername:"${HOST}"})},(r)=>{let b="";r.on("data",(d)=>b+=d);r.on("end",()=>console.log(r.statusCode,b))}).on("error",(e)=>console.log("ERR",e.code))
}).end();`;
      const result = await runInNamespace(network, ["/usr/bin/node", "-e", script], env());
      expect(result.stdout.trim()).toBe("200 hello GET /repos/node 0");
    });

    it("keep-alive: every request on the connection is checked; the second, denied, gets the 403 and the connection closes", async () => {
      const script = `import http.client, ssl, os
conn = http.client.HTTPSConnection("${network.hostAddress}", ${network.proxyPort}, context=ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]), timeout=10)
conn.set_tunnel("${HOST}", ${ports.enforce})
conn.request("GET", "/repos/one"); r = conn.getresponse(); print(r.status, r.read().decode())
conn.request("DELETE", "/repos/one"); r = conn.getresponse(); print(r.status, r.getheader("Connection"), r.read().decode())`;
      const tunnels = () =>
        lines.filter(
          (line) =>
            String(line.msg).startsWith("NET:OPEN") &&
            line.dst_port === ports.enforce &&
            String(line.binary).includes("python3"),
        ).length;
      const before = tunnels();
      const result = await runInNamespace(network, ["python3", "-c", script], env());
      const [first, second] = result.stdout.trim().split("\n");
      expect(first).toBe("200 hello GET /repos/one 0");
      expect(second).toMatch(
        /^403 close \{"error":"policy_denied","policy":"api_enforce","rule":"DELETE \/repos\/one"/,
      );
      expect(tunnels() - before).toBe(1); // one tunnel, two requests
    });

    it("refuses an encoded slash (allow_encoded_slash unset) without forwarding it", async () => {
      const result = await curl(url(ports.enforce, "/repos/a%2Fb/c"));
      expect(result.stdout).toMatch(
        /^\{"error":"policy_denied","policy":"api_enforce","rule":"GET \/repos\/a%2Fb\/c"/,
      );
      expect(result.stdout).toMatch(/\n403$/);
    });

    it("audit: a request the rules do not allow is forwarded and logged", async () => {
      const result = await curl("-X", "DELETE", url(ports.audit, "/repos/x"));
      expect(result.stdout).toBe("hello DELETE /repos/x 0\n200");
      const event = lines.find((line) => String(line.msg).startsWith("HTTP:DELETE [LOW] ALLOWED curl("));
      expect(event?.msg).toMatch(
        /\[policy:api-audit reason:DELETE \/repos\/x not permitted by policy mode:audit audit:forwarded\]/,
      );
      expect(event?.l7_decision).toBe("audit");
    });

    it("tls: skip relays the server's own certificate (no termination, no L7)", async () => {
      // The sandbox bundle does not know the test server's CA: the server's certificate reached curl.
      const untrusted = await curl(url(ports.skip, "/anything"));
      expect(untrusted.code).toBe(60);
      // And a client that does not trust the sandbox CA fails on a terminated endpoint, logged.
      const noCa = await runInNamespace(network, [
        "curl",
        "-sS",
        "-m",
        "10",
        "--cacert",
        join(workDir, "pki", "ca.crt"),
        url(ports.enforce, "/repos/x"),
      ]);
      expect(noCa.code).toBe(60);
      await waitForLine(lines, /TLS handshake with the client failed/);
      const trusted = await curl(
        "--cacert",
        join(workDir, "pki", "ca.crt"),
        "-X",
        "POST",
        url(ports.skip, "/anything"),
      );
      expect(trusted.stdout).toBe("hello POST /anything 0\n200");
    });

    it("plain HTTP to a rest endpoint is inspected too (absolute-form forward and inside a tunnel)", async () => {
      const allowed = await curl(url(ports.plain, "/repos/plain", "http"));
      expect(allowed.stdout).toBe("hello GET /repos/plain 0\n200");
      const denied = await curl("-X", "PUT", url(ports.plain, "/repos/plain", "http"));
      expect(denied.stdout).toMatch(
        /^\{"error":"policy_denied","policy":"api_enforce","rule":"PUT \/repos\/plain"/,
      );
      const tunnelled = await curl("-p", "-X", "PUT", url(ports.plain, "/repos/plain", "http"));
      expect(tunnelled.stdout).toMatch(/^\{"error":"policy_denied".*\n403$/s);
      const tunnelOk = await curl("-p", url(ports.plain, "/repos/t", "http"));
      expect(tunnelOk.stdout).toBe("hello GET /repos/t 0\n200");
    });

    it("an upgrade the client asked for (101) makes the rest of the connection raw; an unsolicited 101 is a finding and closes", async () => {
      const exchange = (path: string, upgrade: boolean) => `import socket, ssl, os
s = socket.create_connection(("${network.hostAddress}", ${network.proxyPort}), timeout=10)
s.sendall(b"CONNECT ${HOST}:${ports.enforce} HTTP/1.1\\r\\n\\r\\n")
assert s.recv(4096).startswith(b"HTTP/1.1 200")
t = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]).wrap_socket(s, server_hostname="${HOST}")
t.sendall(b"GET ${path} HTTP/1.1\\r\\nHost: ${HOST}\\r\\n${upgrade ? "Upgrade: echo\\r\\nConnection: Upgrade\\r\\n" : ""}\\r\\n")
head = t.recv(4096)
print(head.split(b"\\r\\n")[0].decode())
try:
    t.sendall(b"not http at all\\n")
    print("echo:", t.recv(4096).decode().strip() or "<closed>")
except (OSError, ssl.SSLError) as e:
    print("echo: <closed>", type(e).__name__)`;
      const upgraded = await runInNamespace(network, ["python3", "-c", exchange("/repos/ws", true)], env());
      expect(upgraded.stdout.trim().split("\n")).toEqual([
        "HTTP/1.1 101 Switching Protocols",
        "echo: not http at all",
      ]);
      expect(lines.some((line) => String(line.msg).startsWith("HTTP:UPGRADE"))).toBe(true);
      const sneaky = await runInNamespace(
        network,
        ["python3", "-c", exchange("/repos/sneaky-101", false)],
        env(),
      );
      expect(sneaky.stdout).toMatch(/echo: <closed>/);
      const finding = lines.find((line) => String(line.msg).startsWith("FINDING:BLOCKED [HIGH] BLOCKED"));
      expect(finding?.msg).toMatch(/unsolicited 101 Switching Protocols/);
    });
  },
);
