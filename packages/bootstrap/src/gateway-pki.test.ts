import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { OpenShellError } from "@openshell/core";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ensureGatewayPki,
  type GatewayPki,
  generateGatewayPki,
  loadGatewayPki,
  writeGatewayPki,
} from "./gateway-pki.js";

interface PeerSeen {
  authorized: boolean;
  commonName: string | undefined;
}

type ConnectOutcome = { ok: true; greeting: string } | { ok: false; error: string };

/** mTLS server that greets every authorized client and records what it saw. */
async function startServer(pki: GatewayPki) {
  const peers: PeerSeen[] = [];
  const rejections: string[] = [];
  const server = tls.createServer(
    {
      cert: pki.serverCert,
      key: pki.serverKey,
      ca: pki.caCert,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      const subject = socket.getPeerCertificate().subject;
      peers.push({ authorized: socket.authorized, commonName: subject?.CN as string | undefined });
      socket.end("hello");
    },
  );
  server.on("tlsClientError", (error) => rejections.push(error.message));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, peers, rejections };
}

/** Connects and waits for the greeting; with TLS 1.3 a rejected client cert only shows up after the handshake. */
function tryConnect(options: tls.ConnectionOptions): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    let received = "";
    const socket = tls.connect(options);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.on("error", (error) => {
      socket.destroy();
      resolve({ ok: false, error: error.message });
    });
    socket.on("close", () => {
      resolve(received ? { ok: true, greeting: received } : { ok: false, error: "closed without greeting" });
    });
  });
}

describe("gateway PKI", () => {
  let pki: GatewayPki;
  let otherPki: GatewayPki;
  const servers: tls.Server[] = [];
  const tempDirs: string[] = [];

  beforeAll(async () => {
    [pki, otherPki] = await Promise.all([
      generateGatewayPki({ gatewayName: "test", extraSans: ["gateway.example.test", "10.1.2.3"] }),
      generateGatewayPki({ gatewayName: "other" }),
    ]);
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function makeTempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "openshell-pki-"));
    tempDirs.push(dir);
    return dir;
  }

  async function serve(serverPki: GatewayPki) {
    const started = await startServer(serverPki);
    servers.push(started.server);
    return started;
  }

  it("lets a client with the PKI's client cert connect by IP and by name", async () => {
    const { port, peers } = await serve(pki);
    const clientTls = { port, ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey };

    const byIp = await tryConnect({ ...clientTls, host: "127.0.0.1" });
    const byName = await tryConnect({ ...clientTls, host: "127.0.0.1", servername: "localhost" });

    expect(byIp).toEqual({ ok: true, greeting: "hello" });
    expect(byName).toEqual({ ok: true, greeting: "hello" });
    expect(peers).toEqual([
      { authorized: true, commonName: "openshell-client" },
      { authorized: true, commonName: "openshell-client" },
    ]);
  });

  it("refuses a client without a certificate", async () => {
    const { port, peers, rejections } = await serve(pki);

    const outcome = await tryConnect({ port, host: "127.0.0.1", ca: pki.caCert });

    expect(outcome.ok).toBe(false);
    expect(peers).toEqual([]);
    await vi.waitFor(() =>
      expect(rejections).toEqual([expect.stringMatching(/did not return a certificate/)]),
    );
  });

  it("refuses a client cert from another PKI", async () => {
    const { port, peers } = await serve(pki);

    const outcome = await tryConnect({
      port,
      host: "127.0.0.1",
      ca: pki.caCert,
      cert: otherPki.clientCert,
      key: otherPki.clientKey,
    });

    expect(outcome.ok).toBe(false);
    // Node's server drops a connection whose cert fails verification after the handshake, so the
    // only server-side sign is that no secure connection was ever accepted.
    expect(peers).toEqual([]);
  });

  it("issues certificates that chain to the CA with the expected names and usages", () => {
    const ca = new X509Certificate(pki.caCert);
    const server = new X509Certificate(pki.serverCert);
    const client = new X509Certificate(pki.clientCert);

    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe("CN=openshell-test CA");
    expect(ca.verify(ca.publicKey)).toBe(true);
    for (const leaf of [server, client]) {
      expect(leaf.ca).toBe(false);
      expect(leaf.checkIssued(ca)).toBe(true);
      expect(leaf.verify(ca.publicKey)).toBe(true);
      expect(leaf.verify(new X509Certificate(otherPki.caCert).publicKey)).toBe(false);
      expect(new Date(leaf.validTo).getTime()).toBeGreaterThan(Date.now() + 9 * 365 * 24 * 3600 * 1000);
      expect(new Date(leaf.validFrom).getTime()).toBeLessThan(Date.now());
    }
    expect(server.subject).toBe("CN=openshell-server");
    expect(client.subject).toBe("CN=openshell-client");
    expect(server.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(client.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]);
    expect(server.checkPrivateKey(createPrivateKey(pki.serverKey))).toBe(true);
    expect(client.checkPrivateKey(createPrivateKey(pki.clientKey))).toBe(true);
    expect(pki.serverKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

    const sans = server.subjectAltName?.split(", ") ?? [];
    expect(sans).toEqual(
      expect.arrayContaining([
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:host.openshell.internal",
        "DNS:openshell",
        "DNS:gateway.example.test",
        "IP Address:10.1.2.3",
      ]),
    );
    expect(server.checkHost("gateway.example.test")).toBe("gateway.example.test");
    expect(server.checkIP("10.1.2.3")).toBe("10.1.2.3");
  });

  it("creates the PKI once, reuses it, and regenerates it on recreate", async () => {
    const dir = join(makeTempDir(), "mtls");

    const first = await ensureGatewayPki(dir, { gatewayName: "test" });
    const second = await ensureGatewayPki(dir, { gatewayName: "test" });

    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.pki).toEqual(first.pki);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const file of ["ca.key", "server.key", "client.key"]) {
      expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600);
    }

    const recreated = await ensureGatewayPki(dir, { gatewayName: "test", recreate: true });
    expect(recreated.created).toBe(true);
    expect(recreated.pki.caCert).not.toBe(first.pki.caCert);
    expect(loadGatewayPki(dir)).toEqual(recreated.pki);
  });

  it("returns undefined for an empty dir", () => {
    expect(loadGatewayPki(makeTempDir())).toBeUndefined();
    expect(loadGatewayPki(join(makeTempDir(), "absent"))).toBeUndefined();
  });

  it("rejects a partial PKI and tells the user to recreate it", async () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, "ca.crt"), pki.caCert);

    const error = captureError(() => loadGatewayPki(dir));

    expect(error).toBeInstanceOf(OpenShellError);
    expect((error as OpenShellError).code).toBe("config_invalid");
    expect((error as Error).message).toContain("--recreate");
    expect((error as Error).message).toContain(dir);
    await expect(ensureGatewayPki(dir, { gatewayName: "test" })).rejects.toThrow(/--recreate/);
  });

  it("rejects a PKI file that is not valid PEM", () => {
    const dir = makeTempDir();
    writeGatewayPki(dir, pki);
    writeFileSync(join(dir, "server.key"), "not a key");

    const error = captureError(() => loadGatewayPki(dir));

    expect(error).toBeInstanceOf(OpenShellError);
    expect((error as Error).message).toMatch(/server\.key.*--recreate/);
  });
});

function captureError(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}
