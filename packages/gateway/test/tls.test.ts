import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { OpenShell, SandboxPhase, ServiceStatus } from "@openshell/proto";
import {
  type GatewayTls,
  makeStateDir,
  type RunningGateway,
  removeStateDir,
} from "@openshell/testing/gateway-harness";
import { isAlive } from "@openshell/testing/process";
import {
  makeWorkdir,
  run,
  sshOptions,
  startGatewayWithSupervisors,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { makeTestPki, type TestPki } from "@openshell/testing/test-pki";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("TLS with client certificates (mTLS)", () => {
  let pkiDir: string;
  let pki: TestPki;
  let tls: GatewayTls;
  let gw: RunningGateway;
  let stateDir: string;
  let workdir: string;
  let sandboxId = "";

  beforeAll(async () => {
    pkiDir = mkdtempSync(join(tmpdir(), "ospki-"));
    pki = await makeTestPki(pkiDir);
    tls = {
      cert: pki.serverCert,
      key: pki.serverKey,
      clientCa: pki.ca,
      client: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    };
    stateDir = makeStateDir();
    workdir = makeWorkdir();
    gw = await startGatewayWithSupervisors({ stateDir, workdir, tls });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop("SIGTERM");
    if (sandboxId) {
      const pid = supervisorPid(stateDir, sandboxId);
      if (isAlive(pid)) process.kill(pid, "SIGKILL");
    }
    removeStateDir(stateDir);
    rmSync(workdir, { recursive: true, force: true });
    rmSync(pkiDir, { recursive: true, force: true });
  });

  const clientWith = (options: { cert?: string; key?: string }) =>
    createClient(
      OpenShell,
      createGrpcTransport({
        baseUrl: gw.url,
        nodeOptions: {
          ca: readFileSync(pki.ca),
          ...(options.cert ? { cert: readFileSync(options.cert) } : {}),
          ...(options.key ? { key: readFileSync(options.key) } : {}),
        },
      }),
    );

  it("serves gRPC over TLS to a client with a trusted certificate only", async () => {
    expect((await gw.grpc.health({})).status).toBe(ServiceStatus.HEALTHY);
    await expect(clientWith({}).health({})).rejects.toThrow();
    await expect(clientWith({ cert: pki.strangerCert, key: pki.strangerKey }).health({})).rejects.toThrow();
  });

  it("a supervisor dialing https with its client certificate makes the sandbox READY, and SSH works over TLS", async () => {
    sandboxId = (await gw.grpc.createSandbox({ spec: {}, name: "tls-box" })).sandbox!.id;
    await waitForPhase(gw, "tls-box", SandboxPhase.READY);
    const token = (await gw.grpc.createSshSession({ sandboxId })).token;
    const result = await run("ssh", [
      ...sshOptions(gw, sandboxId, token, tls.client),
      "sandbox",
      "echo over tls",
    ]);
    expect(result.stderr).toBe("");
    expect(result.stdout.toString()).toBe("over tls\n");

    const exec = gw.grpc.execSandbox({ sandboxId, command: ["echo", "exec over tls"] });
    let out = "";
    for await (const event of exec)
      if (event.payload.case === "stdout") out += Buffer.from(event.payload.value.data);
    expect(out).toBe("exec over tls\n");
  });

  it("ssh-proxy without a client certificate is refused by the mTLS gateway", async () => {
    const token = (await gw.grpc.createSshSession({ sandboxId })).token;
    const result = await run("ssh", [...sshOptions(gw, sandboxId, token, { ca: pki.ca }), "sandbox", "true"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("openshell ssh-proxy: the gateway requires a client certificate (mTLS)");
  });
});
