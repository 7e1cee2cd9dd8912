import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { GatewayTarget } from "@openshell/bootstrap";
import { connectGateway, type GatewayPki, generateGatewayPki } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { OpenShell } from "@openshell/proto";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { explainGatewayError, transportErrorCodes } from "./gateway-errors.js";

/** A self-signed server certificate for 127.0.0.1, made by openssl. */
function selfSignedServerCert(): { serverCert: string; serverKey: string } {
  const dir = mkdtempSync(join(tmpdir(), "oscli-selfsigned-"));
  try {
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
        ...["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      ],
      { stdio: "pipe" },
    );
    return {
      serverCert: readFileSync(join(dir, "cert.pem"), "utf8"),
      serverKey: readFileSync(join(dir, "key.pem"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A gateway stand-in: the real connect-node adapter answering Health with `answer`. */
function gatewayHandler(answer: () => never | { status: number; version: string }) {
  return connectNodeAdapter({ routes: (router) => router.service(OpenShell, { health: answer }) });
}

const healthy = () => ({ status: 1, version: "test" });

async function listen(server: http2.Http2Server | http2.Http2SecureServer | net.Server, host = "127.0.0.1") {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

function target(url: string, pki?: Pick<GatewayPki, "caCert"> & Partial<GatewayPki>): GatewayTarget {
  return {
    name: "gw1",
    endpoint: new URL(url),
    tls: pki
      ? {
          ca: Buffer.from(pki.caCert),
          ...(pki.clientCert && pki.clientKey
            ? { cert: Buffer.from(pki.clientCert), key: Buffer.from(pki.clientKey) }
            : {}),
        }
      : undefined,
    metadata: { name: "gw1", gateway_endpoint: url, deployment: "process" } as GatewayTarget["metadata"],
  };
}

/** Calls Health the way every CLI command reaches the gateway; returns the raw failure. */
async function healthFailure(to: GatewayTarget): Promise<unknown> {
  const connection = connectGateway(to);
  try {
    await connection.client.health({}, { timeoutMs: 5_000 });
  } catch (error) {
    return error;
  } finally {
    connection.close();
  }
  throw new Error("expected Health to fail");
}

function explained(error: unknown, to: GatewayTarget): OpenShellError {
  const result = explainGatewayError(error, to);
  expect(result).toBeInstanceOf(OpenShellError);
  return result as OpenShellError;
}

describe("explainGatewayError with real TLS and gateway failures", () => {
  let ours: GatewayPki;
  let theirs: GatewayPki;
  const servers: Array<{ close(cb?: () => void): unknown }> = [];

  beforeAll(async () => {
    [ours, theirs] = await Promise.all([
      generateGatewayPki({ gatewayName: "ours" }),
      generateGatewayPki({ gatewayName: "theirs" }),
    ]);
  });

  afterEach(async () => {
    for (const server of servers.splice(0))
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // http2 servers wait for sessions; the clients are closed already.
        setTimeout(resolve, 200);
      });
  });

  async function tlsGateway(
    pki: Pick<GatewayPki, "serverCert" | "serverKey">,
    options: { clientCa?: string; host?: string; answer?: () => never } = {},
  ) {
    const server = http2.createSecureServer(
      {
        cert: pki.serverCert,
        key: pki.serverKey,
        allowHTTP1: true,
        ...(options.clientCa ? { ca: options.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
      },
      gatewayHandler(options.answer ?? (healthy as () => never)),
    );
    servers.push(server);
    return listen(server, options.host);
  }

  it("a gateway certificate from another CA: says so, checks first, --recreate only as a last resort", async () => {
    const port = await tlsGateway(theirs);
    const to = target(`https://127.0.0.1:${port}`, ours);
    const raw = await healthFailure(to);
    expect(transportErrorCodes(raw)).toContain("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    const error = explained(raw, to);
    expect(error.code).toBe("unauthenticated");
    expect(error.message).toContain("did not sign (UNABLE_TO_VERIFY_LEAF_SIGNATURE)");
    expect(error.message).toContain("openshell gateway add");
    const recreate = error.message.indexOf("--recreate");
    expect(recreate).toBeGreaterThan(error.message.indexOf("openshell gateway add"));
    expect(error.message).toContain("Last resort");
    expect(error.message).toContain("discards every sandbox");
  });

  it("a self-signed gateway certificate is recognised by its code", async () => {
    const port = await tlsGateway(selfSignedServerCert());
    const to = target(`https://127.0.0.1:${port}`, ours);
    const raw = await healthFailure(to);
    expect(explained(raw, to).message).toContain("(DEPTH_ZERO_SELF_SIGNED_CERT)");
  });

  it("a certificate for other names: points at the host name, never at --recreate", async () => {
    const port = await tlsGateway(ours, { host: "127.0.0.2" });
    const to = target(`https://127.0.0.2:${port}`, ours);
    const raw = await healthFailure(to);
    const error = explained(raw, to);
    expect(error.message).toContain("not valid for the host name 127.0.0.2 (ERR_TLS_CERT_ALTNAME_INVALID)");
    expect(error.message).not.toContain("--recreate");
  });

  it("a client certificate the gateway does not accept, or none", async () => {
    const port = await tlsGateway(ours, { clientCa: ours.caCert });
    // Under TLS 1.3 the gateway's alert about a foreign client certificate arrives after the
    // handshake and connect-node reports only the reset stream (CANCEL, no cause): nothing tells
    // the cause, so the error is left as it is, with no advice at all.
    const stranger = target(`https://127.0.0.1:${port}`, {
      caCert: ours.caCert,
      clientCert: theirs.clientCert,
      clientKey: theirs.clientKey,
    });
    const reset = await healthFailure(stranger);
    expect(transportErrorCodes(reset)).toEqual([]);
    expect(explainGatewayError(reset, stranger)).toBe(reset);

    const anonymous = target(`https://127.0.0.1:${port}`, { caCert: ours.caCert });
    const missing = explained(await healthFailure(anonymous), anonymous);
    expect(missing.message).toContain("(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)");

    // The right client certificate works against the same server.
    const connection = connectGateway(target(`https://127.0.0.1:${port}`, ours));
    try {
      expect((await connection.client.health({})).version).toBe("test");
    } finally {
      connection.close();
    }
  });

  it("a plaintext gateway addressed with https:// is told apart from certificate trouble", async () => {
    const server = http2.createServer(gatewayHandler(healthy as () => never));
    servers.push(server);
    const port = await listen(server);
    const to = target(`https://127.0.0.1:${port}`, ours);
    const error = explained(await healthFailure(to), to);
    expect(error.code).toBe("unavailable");
    expect(error.message).toContain("did not answer with TLS");
    expect(error.message).not.toContain("--recreate");
  });

  it("nothing listening: not reachable, with the start hint and no --recreate", async () => {
    const probe = net.createServer();
    const port = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const to = target(`https://127.0.0.1:${port}`, ours);
    const raw = await healthFailure(to);
    expect(transportErrorCodes(raw)).toContain("ECONNREFUSED");
    const error = explained(raw, to);
    expect(error.code).toBe("unavailable");
    expect(error.message).toBe(
      `Gateway 'gw1' (https://127.0.0.1:${port}) is not reachable (connection refused).\nStart it with: openshell gateway start --name gw1`,
    );
  });

  it("an UNAVAILABLE the gateway returned, mentioning a handshake, stays the gateway's own error (over mTLS too)", async () => {
    const answer = () => {
      throw new OpenShellError(
        "unavailable",
        "ssh to the sandbox failed: Timed out while waiting for handshake",
      ).toConnectError();
    };
    const port = await tlsGateway(ours, { clientCa: ours.caCert, answer });
    const to = target(`https://127.0.0.1:${port}`, ours);
    const raw = await healthFailure(to);
    expect(raw).toBeInstanceOf(ConnectError);
    expect((raw as ConnectError).code).toBe(Code.Unavailable);
    expect(transportErrorCodes(raw)).toEqual([]);
    expect(explainGatewayError(raw, to)).toBe(raw);
  });

  it("UNAUTHENTICATED and INTERNAL the gateway returned are not turned into certificate advice", async () => {
    for (const [code, message] of [
      ["unauthenticated", "ssl certificate alert: token expired"],
      ["internal", "tls handshake self-signed"],
    ] as const) {
      const server = http2.createServer(
        gatewayHandler(() => {
          throw new OpenShellError(code, message).toConnectError();
        }),
      );
      servers.push(server);
      const port = await listen(server);
      const to = target(`http://127.0.0.1:${port}`);
      const raw = await healthFailure(to);
      expect((raw as ConnectError).rawMessage).toBe(message);
      expect(explainGatewayError(raw, to)).toBe(raw);
    }
  });
});
