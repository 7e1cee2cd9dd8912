import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { OpenShell } from "@openshell/proto";
import { CLI, CliSandboxUser } from "@openshell/testing/cli-harness";
import { freePort, isAlive, pidsOf, waitFor } from "@openshell/testing/process";
import { describeNotReady, sshOptionsVia } from "@openshell/testing/sandbox-harness";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";

const READY_TIMEOUT_MS = 180_000;

/** Every secret the gateway keeps in its store (supervisor credential key, ...), by name. */
function storedSecrets(dbFile: string): Record<string, string> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("select name, payload from objects where object_type = 'secret'").all() as {
      name: string;
      payload: Buffer;
    }[];
    return Object.fromEntries(
      rows.map((row) => [row.name, createHash("sha256").update(row.payload).digest("hex")]),
    );
  } finally {
    db.close();
  }
}

function pkiFingerprint(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((file) => [
        file,
        createHash("sha256")
          .update(readFileSync(join(dir, file)))
          .digest("hex"),
      ]),
  );
}

/**
 * Issue 6, local process gateway: everything comes back after `gateway stop` + `start`, after
 * kill -9 of the gateway and after a crash of its VM driver, and the awkward moments (delete while
 * the driver restarts, create a name again after a crash, a disk lost while down) end in clear states.
 */
describe("local gateway resume", { timeout: 300_000 }, () => {
  let user: CliSandboxUser;
  let port = 0;

  const cli = (args: string[], input?: string) => user.run(args, input === undefined ? {} : { input });
  const sandboxJson = async (name: string) => {
    const result = await cli(["sandbox", "get", name, "-o", "json"]);
    return result.code === 0 ? JSON.parse(result.stdout) : undefined;
  };
  /** Waits for READY; on timeout the error says why not (conditions, events, VM console, gateway log). */
  const waitReady = (name: string) =>
    waitFor(
      async () => (await sandboxJson(name))?.phase === "SANDBOX_PHASE_READY",
      READY_TIMEOUT_MS,
      `sandbox ${name} did not come back READY within ${READY_TIMEOUT_MS / 1000} s`,
    ).catch(async (error: Error) => {
      const why = await describeNotReady(grpc(), name, {
        vmStateDir: join(user.gatewayStateDir(), "vm"),
        gatewayLog: () => user.gatewayLog(),
      });
      throw new Error(`${error.message}\n${why}`);
    });
  const qemuPidOf = (sandboxId: string) => pidsOf(/^qemu-system/, sandboxId);
  const driverPids = () => pidsOf(/openshell-driver-vm/, user.root);
  const grpc = () => {
    const mtls = join(user.configDir, "gateways", "openshell", "mtls");
    return createClient(
      OpenShell,
      createGrpcTransport({
        baseUrl: `https://127.0.0.1:${port}`,
        nodeOptions: {
          ca: readFileSync(join(mtls, "ca.crt")),
          cert: readFileSync(join(mtls, "tls.crt")),
          key: readFileSync(join(mtls, "tls.key")),
        },
      }),
    );
  };
  const sshVia = (config: string, command: string) =>
    execFileSync("ssh", ["-F", config, "openshell-keep", command], {
      env: user.env,
      encoding: "utf8",
      timeout: 60_000,
    });
  const sshWithToken = (sandboxId: string, token: string, command: string) =>
    execFileSync(
      "ssh",
      [
        ...sshOptionsVia(
          `${process.execPath} ${CLI} ssh-proxy --gateway https://127.0.0.1:${port}/connect/ssh --sandbox-id ${sandboxId} --token ${token} --gateway-name openshell`,
        ),
        "sandbox@sandbox",
        command,
      ],
      { env: user.env, encoding: "utf8", timeout: 60_000 },
    );

  let keepId = "";
  let spareId = "";
  let sshConfig = "";
  let oldToken = "";
  let pkiBefore: Record<string, string> = {};
  let secretsBefore: Record<string, string> = {};

  afterEach((context) => user?.showLogOnFailure(context.task.result?.state));
  afterAll(async () => user?.dispose());

  it("starts a gateway and two sandboxes; /sandbox is seeded once", async () => {
    port = await freePort();
    user = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(port) });
    expect((await cli(["gateway", "start"])).code).toBe(0);
    for (const name of ["keep", "spare"]) {
      const created = await cli(["sandbox", "create", "--name", name]);
      expect(created.code, created.stderr).toBe(0);
    }
    keepId = (await sandboxJson("keep")).id;
    spareId = (await sandboxJson("spare")).id;
    const seeded = await cli([
      "sandbox",
      "exec",
      "keep",
      "--",
      "sh",
      "-c",
      "test -f /sandbox/.bashrc && test -f /sandbox/.openshell/workspace-seeded && echo '# mine' >> /sandbox/.bashrc && echo marker-1 > /sandbox/marker && echo ok",
    ]);
    expect(seeded.stdout).toBe("ok\n");
    sshConfig = join(user.root, "keep.ssh_config");
    writeFileSync(sshConfig, (await cli(["sandbox", "ssh-config", "keep"])).stdout);
    expect(sshVia(sshConfig, "cat /sandbox/marker")).toBe("marker-1\n");
    oldToken = (await grpc().createSshSession({ sandboxId: keepId })).token;
    pkiBefore = pkiFingerprint(join(user.gatewayStateDir(), "pki"));
    secretsBefore = storedSecrets(join(user.gatewayStateDir(), "gateway.db"));
    expect(Object.keys(secretsBefore).length).toBeGreaterThan(0);
  });

  it("gateway stop + start: same PKI and secrets, sandboxes READY again, files, ssh-config and old token work", async () => {
    expect((await cli(["gateway", "stop"])).code).toBe(0);
    expect(user.qemuPids()).toEqual([]);
    const started = await cli(["gateway", "start"]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain("Reusing existing TLS certificates");
    await waitReady("keep");
    await waitReady("spare");
    expect(pkiFingerprint(join(user.gatewayStateDir(), "pki"))).toEqual(pkiBefore);
    expect(storedSecrets(join(user.gatewayStateDir(), "gateway.db"))).toEqual(secretsBefore);
    expect(
      (
        await cli([
          "sandbox",
          "exec",
          "keep",
          "--",
          "sh",
          "-c",
          "cat /sandbox/marker; tail -1 /sandbox/.bashrc",
        ])
      ).stdout,
    ).toBe("marker-1\n# mine\n");
    expect(sshVia(sshConfig, "echo via-old-config")).toBe("via-old-config\n");
    expect(sshWithToken(keepId, oldToken, "echo via-old-token")).toBe("via-old-token\n");
  });

  it("kill -9 of the gateway: the VMs keep running and the next start adopts them", async () => {
    const [keepQemu] = qemuPidOf(keepId);
    expect(keepQemu).toBeDefined();
    const gateway = user.gatewayPid();
    expect(gateway).toBeDefined();
    process.kill(gateway as number, "SIGKILL");
    await waitFor(
      () => !isAlive(gateway as number),
      10_000,
      () => "gateway did not die",
    );
    await waitFor(
      () => driverPids().length === 0,
      15_000,
      () => "the driver outlived its gateway",
    );
    expect(qemuPidOf(keepId)).toEqual([keepQemu]);
    expect((await cli(["sandbox", "list"])).code).toBe(3);

    expect((await cli(["gateway", "start"])).code).toBe(0);
    await waitReady("keep");
    await waitReady("spare");
    expect(qemuPidOf(keepId)).toEqual([keepQemu]);
    expect(sshVia(sshConfig, "cat /sandbox/marker")).toBe("marker-1\n");
  });

  it("a crashed VM driver is restarted and adopts its VMs; sandboxes stay usable", async () => {
    const [keepQemu] = qemuPidOf(keepId);
    const [driver] = driverPids();
    expect(driver).toBeDefined();
    process.kill(driver as number, "SIGKILL");
    await waitFor(
      () => driverPids().some((pid) => pid !== driver),
      30_000,
      () => "the gateway did not restart its driver",
    );
    await waitReady("keep");
    const exec = await cli(["sandbox", "exec", "keep", "--", "cat", "/sandbox/marker"]);
    expect(exec.stdout).toBe("marker-1\n");
    expect(qemuPidOf(keepId)).toEqual([keepQemu]);
    expect(user.qemuPids()).toHaveLength(2);
  });

  it("deleting a sandbox while the driver restarts completes once the driver is back", async () => {
    const [driver] = driverPids();
    process.kill(driver as number, "SIGKILL");
    const deleted = await cli(["sandbox", "delete", "spare"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await sandboxJson("spare")).toBeUndefined();
    await waitFor(
      () => qemuPidOf(spareId).length === 0,
      60_000,
      () => "spare's VM survived its delete",
    );
    await waitReady("keep");
  });

  it("creating a name again after a crash is refused clearly while the first one lives", async () => {
    const creating = user.start(["sandbox", "create", "--name", "dup"]);
    await waitFor(
      () => creating.output().stderr.includes("Created sandbox: dup"),
      60_000,
      () => "dup not created",
    );
    process.kill(user.gatewayPid() as number, "SIGKILL");
    await creating.done;
    expect((await cli(["gateway", "start"])).code).toBe(0);
    const again = await cli(["sandbox", "create", "--name", "dup"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("dup");
    expect(again.stderr).toMatch(/already exists/);
    await waitReady("dup");
    expect((await cli(["sandbox", "delete", "dup"])).code).toBe(0);
    const recreated = await cli(["sandbox", "create", "--name", "dup", "--", "echo", "second-dup"]);
    expect(recreated.stdout).toContain("second-dup");
    expect((await cli(["sandbox", "delete", "dup"])).code).toBe(0);
  });

  it("a disk lost while the gateway was down ends in ERROR with the reason; delete works; --recreate starts over", async () => {
    expect((await cli(["gateway", "stop"])).code).toBe(0);
    const disk = join(user.gatewayStateDir(), "vm", "sandboxes", keepId, "disk.qcow2");
    expect(existsSync(disk)).toBe(true);
    rmSync(disk);
    expect((await cli(["gateway", "start"])).code).toBe(0);
    await waitFor(
      async () => (await sandboxJson("keep"))?.phase === "SANDBOX_PHASE_ERROR",
      60_000,
      () => "keep did not end in ERROR",
    );
    const listed = await cli(["sandbox", "list"]);
    expect(listed.stdout).toContain("DiskMissing");
    const exec = await cli(["sandbox", "exec", "keep", "--", "true"]);
    expect(exec.code).toBe(5);
    expect(exec.stderr).toContain("is not ready (phase: Error, DiskMissing");
    expect((await cli(["sandbox", "delete", "keep"])).code).toBe(0);
    expect(user.qemuPids()).toEqual([]);
    const recreated = await cli(["gateway", "start", "--recreate"]);
    expect(recreated.code, recreated.stderr).toBe(0);
    expect(recreated.stderr).toContain("Recreating gateway 'openshell'");
    expect(recreated.stderr).toContain("Generated the gateway's CA and certificates");
    expect(pkiFingerprint(join(user.gatewayStateDir(), "pki"))["ca.crt"]).not.toBe(pkiBefore["ca.crt"]);
    expect(storedSecrets(join(user.gatewayStateDir(), "gateway.db"))).not.toEqual(secretsBefore);
    expect(JSON.parse((await cli(["sandbox", "list", "-o", "json"])).stdout)).toEqual([]);
    const destroyed = spawnSync(process.execPath, [CLI, "gateway", "destroy", "--yes"], { env: user.env });
    expect(destroyed.status).toBe(0);
  });
});
