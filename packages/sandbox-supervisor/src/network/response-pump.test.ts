import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ConnectionOptions,
  createServer as createTlsServer,
  TLSSocket,
  connect as tlsConnect,
} from "node:tls";
import { listenLocal as listen, pattern, readAll, sha256 } from "@openshell/testing/byte-streams";
import { makeTestPki } from "@openshell/testing/test-pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResponsePump } from "./response-pump.js";

/** In the test PKI's server certificate. */
const HOST = "host.openshell.internal";

describe("ResponsePump: a TLS upstream's records to a TLS client through reused buffers", () => {
  let dir: string;
  let tls: { cert: Buffer; key: Buffer; ca: string };
  const servers: Server[] = [];
  const sockets: Socket[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "response-pump-"));
    const pki = await makeTestPki(dir);
    tls = {
      cert: readFileSync(pki.serverCert),
      key: readFileSync(pki.serverKey),
      ca: readFileSync(pki.ca, "utf8"),
    };
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A server that sends `payload` as soon as a client is in, a pump reading it, attached (after
   * `attachAfterMs`) to the proxy side of a TLS connection whose user reads slowly; what the user got.
   */
  async function pumped(payload: Buffer, attachAfterMs: number, check = (_chunk: Buffer) => true) {
    const upstreamServer = createTlsServer({ cert: tls.cert, key: tls.key }, (socket) => {
      sockets.push(socket);
      socket.end(payload);
    });
    servers.push(upstreamServer);
    const upstreamPort = await listen(upstreamServer);
    const front = createServer(async (accepted) => {
      sockets.push(accepted);
      const client = new TLSSocket(accepted, { isServer: true, cert: tls.cert, key: tls.key });
      const pump = new ResponsePump();
      const options: ConnectionOptions & { onread: ResponsePump["onread"] } = {
        host: "127.0.0.1",
        port: upstreamPort,
        servername: HOST,
        ca: [tls.ca],
        onread: pump.onread,
      };
      const upstream = tlsConnect(options);
      pump.reads(upstream);
      sockets.push(upstream);
      upstream.on("end", () => client.end());
      await once(upstream, "secureConnect");
      await new Promise((resolve) => setTimeout(resolve, attachAfterMs));
      pump.attach(client, check);
    });
    servers.push(front);
    const user = tlsConnect({ host: "127.0.0.1", port: await listen(front), servername: HOST, ca: [tls.ca] });
    sockets.push(user);
    return readAll(user, 4 << 20, 20);
  }

  it("carries 32 MiB intact to a slow reader, with what arrived before it was attached", async () => {
    const payload = pattern(32 << 20, 7);
    const received = await pumped(payload, 200);
    expect(received.length).toBe(payload.length);
    expect(sha256(received)).toBe(sha256(payload));
  });

  it("writes nothing once the check refuses a chunk (the stage is closing the connection)", async () => {
    let seen = 0;
    const received = pumped(pattern(1 << 20, 3), 0, (chunk) => {
      seen += chunk.length;
      return seen <= 64 * 1024;
    });
    // The stage closes the connection when it refuses; here the user just stops getting bytes.
    const outcome = await Promise.race([
      received,
      new Promise((resolve) => setTimeout(resolve, 1000, "stalled")),
    ]);
    expect(outcome).toBe("stalled");
    expect(seen).toBeGreaterThan(64 * 1024);
    expect(seen).toBeLessThan(1 << 20);
  });
});
