import { readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import {
  CliSandboxUser,
  checkSshConfig,
  checkStopStartKeepsWorkspace,
  checkUploadDownload,
} from "@openshell/testing/cli-harness";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { importDebianSandboxImage } from "@openshell/testing/fake-kubernetes/sandbox-images";
import { freePort, isAlive, waitFor } from "@openshell/testing/process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/**
 * The CLI with a local gateway on the Docker driver (`gateway start --driver auto`, mTLS, the
 * supervisor staged by the CLI and mounted into each container, the gateway on 127.0.0.1 reached
 * through the driver's forwarder) against a PRIVATE dockerd, in the default image: the VM runtime's
 * root filesystem (staged as for the VM driver), imported on first use: create, exec, OpenSSH, upload/download, stop/start, a gateway stopped and started again
 * (the container keeps running and is adopted), delete (no container or volume left).
 */
const GATEWAY = "docker-local";
const SANDBOX = "dock";
const READY_TIMEOUT_S = "180";
const MANAGED = "label=openshell.ai/managed-by=openshell";
const isRoot = process.getuid?.() === 0;

let daemon: DockerDaemon | undefined;
let user: CliSandboxUser;
let env: Record<string, string>;

beforeAll(async () => {
  if (!isRoot) return;
  daemon = await startDockerDaemon({
    runDir: "/run/openshell-dd-docker",
    dataRoot: "/var/lib/openshell-dd-docker",
    addressPool: "base=10.215.0.0/16,size=24",
  });
  // The default image is the VM runtime's root filesystem, imported by the driver on first use:
  // remove any copy a previous run left in the private daemon's data root.
  const old = (await daemon.docker(["images", "-q", "openshell/sandbox"])).stdout.split("\n").filter(Boolean);
  if (old.length > 0) await daemon.docker(["rmi", "-f", ...new Set(old)], { allowFailure: true });
  user = new CliSandboxUser({ OPENSHELL_PROVISION_TIMEOUT: READY_TIMEOUT_S });
  env = {
    DOCKER_HOST: daemon.host,
    OPENSHELL_DOCKER_NETWORK: "openshell-dd-e2e",
    OPENSHELL_GATEWAY_PORT: String(await freePort()),
  };
}, 600_000);

afterEach(async (context) => {
  if (context.task.result?.state !== "fail" || !user) return;
  const log = join(user.gatewayStateDir(GATEWAY), "logs", "gateway.log");
  try {
    process.stderr.write(`gateway log:\n${readFileSync(log, "utf8").slice(-8000)}\n`);
  } catch {
    // no log yet
  }
});

afterAll(async () => {
  const pid = user?.gatewayPid(GATEWAY);
  if (pid && isAlive(pid)) process.kill(pid, "SIGKILL");
  if (daemon) {
    await daemon.removeMatching(MANAGED);
    await daemon.stop();
  }
  user?.cleanUp();
}, 180_000);

describe.skipIf(!isRoot)("sandboxes as Docker containers through the CLI (private dockerd)", () => {
  it("`gateway start --driver auto` picks Docker where KVM boots no guest, and says why", async () => {
    // Under a KVM that boots guests auto would pick the VM driver; here (PVM, or no /dev/kvm) it
    // must be Docker, since the private daemon answers.
    const started = await user.run(["gateway", "start", "--name", GATEWAY, "--driver", "auto"], {
      env: { ...env, OPENSHELL_VM_ACCEL: "tcg" },
      timeoutMs: 900_000,
    });
    expect(started.code, started.stderr).toBe(0);
    const status = JSON.parse((await user.run(["status", "-o", "json"])).stdout);
    expect(status).toMatchObject({ gateway: GATEWAY, driver: "docker" });
    const info = JSON.parse((await user.run(["gateway", "info", "--name", GATEWAY, "-o", "json"])).stdout);
    expect(info.driver_reason).toContain("no KVM that boots a guest (OPENSHELL_VM_ACCEL=tcg)");
    expect(info.driver_reason).toContain(`Docker at ${env.DOCKER_HOST} answers`);
  }, 920_000);

  it("create runs the command in a new container", async () => {
    const created = await user.run(["sandbox", "create", "--name", SANDBOX, "--", "echo", "ok"], {
      timeoutMs: 240_000,
    });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain("ok");
    // The default image (the VM runtime's root filesystem) was imported on first use, with progress.
    expect(created.stderr).toContain("Importing");
    expect(created.stderr).toContain("Imported");
    const labels = await (daemon as DockerDaemon).docker([
      "inspect",
      "-f",
      '{{index .Config.Labels "openshell.ai/sandbox-name"}} {{.HostConfig.Privileged}}',
      `openshell-${SANDBOX}`,
    ]);
    expect(labels.stdout.trim()).toBe(`${SANDBOX} false`);
  }, 260_000);

  it("exec runs as the sandbox user in /sandbox", async () => {
    const exec = await user.run([
      "sandbox",
      "exec",
      SANDBOX,
      "--",
      "bash",
      "-c",
      "id -un; pwd; echo $((6*7))",
    ]);
    expect(exec, exec.stderr).toMatchObject({ code: 0, stdout: "sandbox\n/sandbox\n42\n" });
  });

  it("commands in the container reach neither the host nor the gateway directly (the policy's network namespace, built with NET_ADMIN and SYS_ADMIN)", async () => {
    // A listener on the host's address on the sandbox network: the container's own namespace reaches
    // it (the supervisor dials the gateway's forwarder there), the sandbox's namespace must not.
    const network = await (daemon as DockerDaemon).docker([
      "network",
      "inspect",
      "-f",
      "{{(index .IPAM.Config 0).Gateway}}",
      env.OPENSHELL_DOCKER_NETWORK as string,
    ]);
    const hostIp = network.stdout.trim();
    let accepted = 0;
    const server = createServer((socket) => {
      accepted++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, hostIp, resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const connect = (host: string, to: number | string) =>
        `timeout 10 bash -c 'exec 3<>/dev/tcp/${host}/${to}' 2>&1; echo "rc=$?"`;
      const probe = await user.run([
        "sandbox",
        "exec",
        SANDBOX,
        "--",
        "bash",
        "-c",
        [
          connect(hostIp, port),
          connect("host.openshell.internal", port),
          connect(hostIp, env.OPENSHELL_GATEWAY_PORT as string),
        ].join("; "),
      ]);
      expect(probe.stdout.match(/rc=\d+/g), probe.stdout).toEqual(["rc=1", "rc=1", "rc=1"]);
      expect(accepted).toBe(0);
    } finally {
      server.close();
    }
  });

  it("OpenSSH through `openshell ssh-proxy` (ssh-config)", async () => {
    await checkSshConfig(user, SANDBOX);
  });

  it("upload and download bring the same bytes back", async () => {
    await checkUploadDownload(user, SANDBOX);
  });

  it("forward reaches a server inside the container, in the background, until stopped", async () => {
    const serverPort = await freePort();
    const server = await user.run([
      "sandbox",
      "exec",
      SANDBOX,
      "--",
      "sh",
      "-c",
      `mkdir -p /sandbox/www && echo forwarded-ok > /sandbox/www/index.html && cd /sandbox/www && setsid -f python3 -m http.server ${serverPort} --bind 127.0.0.1 >/dev/null 2>&1`,
    ]);
    expect(server.code, server.stderr).toBe(0);
    await waitFor(
      async () =>
        (
          await user.run([
            "sandbox",
            "exec",
            SANDBOX,
            "--",
            "sh",
            "-c",
            `curl -sf http://127.0.0.1:${serverPort}/`,
          ])
        ).code === 0,
      30_000,
      () => "timed out waiting for the server in the sandbox",
    );
    const forward = await user.run(["sandbox", "forward", SANDBOX, String(serverPort), "--background"]);
    expect(forward.code, forward.stderr).toBe(0);
    try {
      const body = await (await fetch(`http://127.0.0.1:${serverPort}/index.html`)).text();
      expect(body).toBe("forwarded-ok\n");
    } finally {
      expect((await user.run(["forward", "stop", String(serverPort)])).code).toBe(0);
    }
    await waitFor(
      async () =>
        fetch(`http://127.0.0.1:${serverPort}/`).then(
          () => false,
          () => true,
        ),
      10_000,
      () => "timed out waiting for the forward to stop",
    );
  });

  it("stop and start keep /sandbox; a gateway stopped and started again adopts the running container", async () => {
    const docker = daemon as DockerDaemon;
    await checkStopStartKeepsWorkspace(user, SANDBOX, { stopTimeoutMs: 120_000, startTimeoutMs: 240_000 });

    const container = (
      await docker.docker(["inspect", "-f", "{{.Id}}", `openshell-${SANDBOX}`])
    ).stdout.trim();
    const gatewayStopped = await user.run(["gateway", "stop", "--name", GATEWAY], { timeoutMs: 120_000 });
    expect(gatewayStopped.code, gatewayStopped.stderr).toBe(0);
    expect((await docker.docker(["inspect", "-f", "{{.State.Running}}", container])).stdout.trim()).toBe(
      "true",
    );
    const again = await user.run(["gateway", "start", "--name", GATEWAY], { env, timeoutMs: 180_000 });
    expect(again.code, again.stderr).toBe(0);
    await waitFor(
      async () => {
        const state = await user.run(["sandbox", "get", SANDBOX, "-o", "json"]);
        return state.code === 0 && JSON.parse(state.stdout).phase === "SANDBOX_PHASE_READY";
      },
      180_000,
      "the sandbox is not READY again after the gateway restart",
    );
    expect((await user.run(["sandbox", "exec", SANDBOX, "--", "cat", "/sandbox/kept.txt"])).stdout).toBe(
      "survived\n",
    );
    expect((await docker.docker(["inspect", "-f", "{{.Id}}", `openshell-${SANDBOX}`])).stdout.trim()).toBe(
      container,
    );
  }, 600_000);

  it("create --from runs any image with a glibc userland (the supervisor is mounted, not in the image); an image that cannot be pulled fails saying why and leaves nothing", async () => {
    const docker = daemon as DockerDaemon;
    const image = await importDebianSandboxImage(docker);
    const created = await user.run(
      [
        "sandbox",
        "create",
        "--name",
        "fromimg",
        "--from",
        image,
        "--",
        "bash",
        "-c",
        "echo from-image; id -un",
      ],
      { timeoutMs: 240_000 },
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain("from-image\nsandbox\n");
    expect(
      (await docker.docker(["inspect", "-f", "{{.Config.Image}}", "openshell-fromimg"])).stdout.trim(),
    ).toBe(image);
    expect((await user.run(["sandbox", "delete", "fromimg"])).code).toBe(0);

    const failed = await user.run(
      ["sandbox", "create", "--name", "nopull", "--from", "example.invalid/missing:1", "--", "true"],
      { env: { OPENSHELL_PROVISION_TIMEOUT: "60" }, timeoutMs: 120_000 },
    );
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain(
      "image example.invalid/missing:1 is not on the Docker daemon and getting it failed",
    );
    const got = JSON.parse((await user.run(["sandbox", "get", "nopull", "-o", "json"])).stdout);
    expect(got.phase).toBe("SANDBOX_PHASE_ERROR");
    expect(
      (await docker.docker(["ps", "-aq", "--filter", "label=openshell.ai/sandbox-name=nopull"])).stdout,
    ).toBe("");
    expect((await user.run(["sandbox", "delete", "nopull"])).code).toBe(0);
  }, 300_000);

  it("delete removes the container and its workspace volume", async () => {
    const docker = daemon as DockerDaemon;
    const deleted = await user.run(["sandbox", "delete", SANDBOX], { timeoutMs: 120_000 });
    expect(deleted.code, deleted.stderr).toBe(0);
    await waitFor(
      async () => (await docker.docker(["ps", "-aq", "--filter", MANAGED])).stdout === "",
      60_000,
      "a container is left",
    );
    expect((await docker.docker(["volume", "ls", "-q", "--filter", MANAGED])).stdout).toBe("");
    const stopped = await user.run(["gateway", "stop", "--name", GATEWAY], { timeoutMs: 120_000 });
    expect(stopped.code, stopped.stderr).toBe(0);
  }, 200_000);
});
