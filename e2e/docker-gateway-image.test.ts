/**
 * The gateway image (deploy/docker/Dockerfile, built by scripts/build-gateway-image.sh) on a
 * private dockerd: the container runs the gateway with the VM driver, and a sandbox is a QEMU
 * microVM inside the container (TCG unless the host's KVM really works). mTLS from the host with a
 * PKI generated like `openshell gateway start` does, handed to the container through its volume.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type GatewayPki, generateGatewayPki } from "@openshell/bootstrap";
import { chooseAccelerator } from "@openshell/driver-vm/accelerator";
import { locateVmRuntime } from "@openshell/driver-vm/vm-runtime";
import { OpenShell, SandboxPhase, ServiceStatus } from "@openshell/proto";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { findRepoRoot, freePort, waitFor } from "@openshell/testing/process";
import { execOutput } from "@openshell/testing/sandbox-harness";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const REPO = findRepoRoot(import.meta.dirname);
const BUILD_SCRIPT = join(REPO, "scripts", "build-gateway-image.sh");
/** QEMU under TCG, inside a container, on a 2-core machine. */
const READY_TIMEOUT_MS = 180_000;
const HOOK_TIMEOUT_MS = 600_000;

const suffix = randomBytes(4).toString("hex");
const names = {
  container: `openshell-gw-test-${suffix}`,
  volume: `openshell-gw-test-${suffix}`,
  network: `openshell-gw-test-${suffix}`,
  sandbox: `docker-${suffix}`,
};

/** --device /dev/kvm only when KVM exists and really boots a guest on this host. */
async function kvmWorks(): Promise<boolean> {
  try {
    const runtime = locateVmRuntime();
    const choice = await chooseAccelerator({ qemuBinary: "qemu-system-x86_64", kernel: runtime.kernel });
    return choice.accelerator === "kvm";
  } catch {
    return false;
  }
}

/** A tar of pki/{ca.crt,server.crt,server.key,client.crt,client.key} (no CA key: it stays with the client). */
function pkiTarball(pki: GatewayPki): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "osgw-pki-"));
  try {
    mkdirSync(join(dir, "pki"), { mode: 0o700 });
    const files: [string, string, number][] = [
      ["ca.crt", pki.caCert, 0o644],
      ["server.crt", pki.serverCert, 0o644],
      ["server.key", pki.serverKey, 0o600],
      ["client.crt", pki.clientCert, 0o644],
      ["client.key", pki.clientKey, 0o600],
    ];
    for (const [name, text, mode] of files) writeFileSync(join(dir, "pki", name), text, { mode });
    return execFileSync("tar", ["-C", dir, "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "pki"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("gateway Docker image", () => {
  let daemon: DockerDaemon | undefined;
  let image = "";
  let pki: GatewayPki;
  let port = 0;
  let client: Client<typeof OpenShell>;
  let containerStarted = false;

  const docker = (args: string[], options?: Parameters<DockerDaemon["docker"]>[1]) => {
    if (!daemon) throw new Error("no docker daemon");
    return daemon.docker(args, options);
  };

  beforeAll(async () => {
    daemon = await startDockerDaemon();
    const started = Date.now();
    const build = spawnSync("bash", [BUILD_SCRIPT, "--docker-host", daemon.host], {
      encoding: "utf8",
      timeout: HOOK_TIMEOUT_MS - 60_000,
    });
    if (build.status !== 0) {
      throw new Error(`build-gateway-image.sh failed (${build.status ?? build.signal}):\n${build.stderr}`);
    }
    image = build.stdout.trim().split("\n").at(-1) ?? "";
    process.stderr.write(`${build.stderr}[test] image ${image} ready in ${Date.now() - started} ms\n`);
    expect(image).toBe("openshell/gateway:dev");

    pki = await generateGatewayPki({ gatewayName: `docker-test-${suffix}`, extraSans: ["127.0.0.1"] });
    port = await freePort();
    client = createClient(
      OpenShell,
      createGrpcTransport({
        baseUrl: `https://127.0.0.1:${port}`,
        nodeOptions: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey },
      }),
    );
  }, HOOK_TIMEOUT_MS);

  afterEach(async (context) => {
    if (context.task.result?.state !== "fail" || !daemon || !containerStarted) return;
    const logs = await docker(["logs", "--tail", "200", names.container], { allowFailure: true });
    process.stderr.write(`--- docker logs ${names.container}\n${logs.stdout}${logs.stderr}\n`);
    const consoles = await docker(
      [
        "exec",
        names.container,
        "sh",
        "-c",
        'for f in /var/lib/openshell/vm/sandboxes/*/console.log; do [ -f "$f" ] && echo "--- $f" && tail -c 4000 "$f"; done',
      ],
      { allowFailure: true, timeoutMs: 20_000 },
    );
    process.stderr.write(`${consoles.stdout}${consoles.stderr}\n`);
  });

  afterAll(async () => {
    if (!daemon) return;
    const errors: string[] = [];
    const attempt = async (what: string, action: () => Promise<unknown>) => {
      try {
        await action();
      } catch (error) {
        errors.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    await attempt("removing the container", () =>
      docker(["rm", "-f", "-v", names.container], { allowFailure: true, timeoutMs: 120_000 }),
    );
    await attempt("removing the volume", () =>
      docker(["volume", "rm", "-f", names.volume], { allowFailure: true }),
    );
    await attempt("removing the network", () =>
      docker(["network", "rm", names.network], { allowFailure: true }),
    );
    await attempt("stopping dockerd", () => (daemon as DockerDaemon).stop());
    if (errors.length > 0) process.stderr.write(`cleanup problems:\n${errors.join("\n")}\n`);
  }, HOOK_TIMEOUT_MS);

  it("runs the gateway with the VM driver: Health, CreateSandbox, READY, Exec, Delete", async () => {
    const started = Date.now();
    await docker(["volume", "create", names.volume]);
    // The deployer's job before the first start: the PKI files in the volume (pki/, keys 0600).
    await docker(
      [
        "run",
        "--rm",
        "-i",
        "--network",
        "none",
        "-v",
        `${names.volume}:/var/lib/openshell`,
        "--entrypoint",
        "tar",
        image,
        "-C",
        "/var/lib/openshell",
        "-xpf",
        "-",
      ],
      { input: pkiTarball(pki) },
    );
    // --bridge none on the private daemon: publishing a port needs a user-defined network.
    await docker(["network", "create", names.network]);
    const kvm = await kvmWorks();
    await docker([
      "run",
      "-d",
      "--name",
      names.container,
      "--hostname",
      "openshell-test",
      "--network",
      names.network,
      "-p",
      `127.0.0.1:${port}:8080`,
      "-v",
      `${names.volume}:/var/lib/openshell`,
      "--stop-timeout",
      "60",
      ...(kvm ? ["--device", "/dev/kvm"] : []),
      image,
    ]);
    containerStarted = true;

    let lastError = "";
    await waitFor(
      async () => {
        const state = (
          await docker(["inspect", "--format", "{{.State.Status}}", names.container], { allowFailure: true })
        ).stdout.trim();
        if (state !== "running") throw new Error(`the gateway container is ${state || "gone"}`);
        try {
          const health = await client.health({}, { timeoutMs: 5_000 });
          return health.status === ServiceStatus.HEALTHY;
        } catch (error) {
          lastError = error instanceof Error ? error.message : String(error);
          return false;
        }
      },
      60_000,
      () => `the gateway in the container did not answer Health over mTLS: ${lastError}`,
    );
    process.stderr.write(`[test] gateway healthy after ${Date.now() - started} ms (kvm: ${kvm})\n`);

    const sandbox = (await client.createSandbox({ name: names.sandbox, spec: {} })).sandbox;
    expect(sandbox?.id).toBeTruthy();
    const sandboxId = sandbox?.id ?? "";
    let phase: SandboxPhase | undefined;
    await waitFor(
      async () => {
        phase = (await client.getSandbox({ name: names.sandbox })).sandbox?.phase;
        if (phase === SandboxPhase.ERROR) throw new Error(`sandbox ${names.sandbox} went to ERROR`);
        return phase === SandboxPhase.READY;
      },
      READY_TIMEOUT_MS,
      () =>
        `sandbox ${names.sandbox} not READY within ${READY_TIMEOUT_MS / 1000} s (last ${phase === undefined ? "none" : SandboxPhase[phase]})`,
    );
    process.stderr.write(`[test] sandbox READY after ${Date.now() - started} ms\n`);

    const out = await execOutput(client.execSandbox({ sandboxId, command: ["echo", "hello-from-docker"] }));
    expect(out).toEqual({ stdout: "hello-from-docker\n", stderr: "", exitCode: 0 });

    // The image's HEALTHCHECK command: /readyz over mTLS with the client certificate in the volume.
    const health = await docker(["exec", names.container, "/opt/openshell/bin/openshell-healthcheck"], {
      allowFailure: true,
    });
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout).toContain('"status":"healthy"');

    await client.deleteSandbox({ name: names.sandbox });
    await waitFor(
      async () => (await client.listSandboxes({})).sandboxes.length === 0,
      60_000,
      () => `sandbox ${names.sandbox} still listed after DeleteSandbox`,
    );
    let qemu = "";
    await waitFor(
      async () => {
        qemu = (
          await docker(["exec", names.container, "sh", "-c", "pgrep -c qemu-system || true"])
        ).stdout.trim();
        return qemu === "0";
      },
      30_000,
      () => `${qemu} QEMU process(es) still running in the container after DeleteSandbox`,
    );
    process.stderr.write(`[test] done after ${Date.now() - started} ms\n`);
  }, 420_000);
});
