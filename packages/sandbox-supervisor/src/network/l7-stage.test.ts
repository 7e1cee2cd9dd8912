import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer, type Server } from "node:https";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { createLogger } from "@openshell/core";
import { parsePolicyYaml } from "@openshell/policy";
import { makeTestPki } from "@openshell/testing/test-pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createL7Stage } from "./l7-stage.js";
import { createNetworkDecisions } from "./network-decisions.js";
import { SandboxCa } from "./sandbox-ca.js";

/** In the test PKI's server certificate. */
const HOST = "host.openshell.internal";

describe("L7 stage: the upstream's certificate is verified (one client context for all connections)", () => {
  let dir: string;
  let server: Server;
  let port: number;
  let testCa: string;
  let ca: SandboxCa;
  /** Per TLS connection the server accepted: whether it was a resumed session. */
  const resumed: boolean[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "l7-stage-"));
    const pki = await makeTestPki(dir);
    testCa = readFileSync(pki.ca, "utf8");
    ca = await SandboxCa.create();
    server = createHttpsServer(
      { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) },
      (request, response) => response.end(`hello ${request.url}`),
    );
    server.on("secureConnection", (socket) => resumed.push(socket.isSessionReused()));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const makeStage = (upstreamCa: string[] | undefined) =>
    createL7Stage({ logger: createLogger({ name: "l7-stage-test", level: "silent" }), ca, upstreamCa });

  /** One tunnel through the stage (as the proxy hands it over after CONNECT); the client's answer. */
  const through = async (
    upstreamCa: string[] | undefined,
    dialPort = port,
    stage = makeStage(upstreamCa),
  ) => {
    const decisions = createNetworkDecisions(
      parsePolicyYaml(`version: 1
network_policies:
  api:
    name: api
    endpoints:
      - host: ${HOST}
        port: ${port}
        protocol: rest
        enforcement: enforce
        rules: [{ allow: { method: GET, path: "/**" } }]
    binaries: [{ path: /usr/bin/curl }]
`),
    );
    const decision = decisions.evaluateConnect({
      host: HOST,
      port,
      binary: { path: "/usr/bin/curl", ancestors: [], cmdlinePaths: [] },
    });
    if (!decision.allowed) throw new Error(decision.reason);
    const accepted = new Promise<Socket>((resolve) => {
      const listener = createServer((socket) => {
        listener.close();
        resolve(socket);
      }).listen(0, "127.0.0.1", () => {
        const address = listener.address() as { port: number };
        client = connect(address.port, "127.0.0.1");
      });
    });
    let client: Socket | undefined;
    const proxySide = await accepted;
    expect(stage.inspects(decision)).toBe(true);
    stage.open({
      client: proxySide,
      // The proxy's dial: its addresses in turn (here the one), the stage's way of connecting.
      dial: (connectTo) => connectTo("127.0.0.1", dialPort),
      target: { host: HOST, port },
      decision,
      identity: { pid: 1, path: "/usr/bin/curl", ancestors: [], cmdlinePaths: [], label: "curl(1)" },
      decisions,
      clientHead: Buffer.alloc(0),
    });
    const tls = tlsConnect({ socket: client, servername: HOST, ca: [ca.certPem] });
    tls.write(`GET /x HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    let answer = "";
    tls.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
    });
    await new Promise((resolve) => {
      tls.on("close", resolve);
      tls.on("error", resolve);
    });
    return answer;
  };

  it("reaches a server whose root is given, twice (the shared context), and answers 502 to one it cannot verify", async () => {
    const stage = makeStage([testCa]);
    resumed.length = 0;
    expect(await through([testCa], port, stage)).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*hello \/x$/);
    expect(await through([testCa], port, stage)).toMatch(/hello \/x$/);
    // The second connection resumed the first one's session (no certificate chain sent again).
    expect(resumed).toEqual([false, true]);
    // The system roots alone do not know the test CA.
    expect(await through(undefined)).toMatch(
      /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*upstream TLS to host\.openshell\.internal:\d+ failed/,
    );
  });

  it("answers 502 inside the tunnel when the server cannot be reached (it is dialed after the first byte)", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await through([testCa], deadPort)).toMatch(
      /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*cannot connect to host\.openshell\.internal:\d+: connect ECONNREFUSED/,
    );
  });
});
