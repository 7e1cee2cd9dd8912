import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { freePort, waitFor } from "@openshell/testing/process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const GATEWAY = "dock";
const CONTAINER = `openshell-cluster-${GATEWAY}`;
const READY_TIMEOUT_MS = 300_000;
const BUILD_TIMEOUT_MS = 1_200_000;
const BUILD_SCRIPT = join(import.meta.dirname, "..", "scripts", "build-gateway-image.sh");
const IMAGE = "openshell/gateway:dev";
const LAYER_CACHE = "openshell/gateway:e2e-layer-cache";
const NO_IMAGE = "noimage";

/** The secrets and certificates a resume must keep, as hashes read inside the container. */
const FINGERPRINT_SCRIPT = `
const fs = require("node:fs");
const crypto = require("node:crypto");
const hash = (data) => crypto.createHash("sha256").update(data).digest("hex");
const out = {};
for (const file of fs.readdirSync("/var/lib/openshell/pki").sort()) out["pki/" + file] = hash(fs.readFileSync("/var/lib/openshell/pki/" + file));
const Database = require("/opt/openshell/gateway/node_modules/better-sqlite3");
const db = new Database("/var/lib/openshell/gateway.db", { readonly: true });
for (const row of db.prepare("select name, payload from objects where object_type = 'secret'").all()) out["secret/" + row.name] = hash(row.payload);
console.log(JSON.stringify(out));
`;

/**
 * Issue 6, the gateway in Docker: upstream's resume scenarios against a private Docker daemon this
 * test starts, with real VM sandboxes inside the gateway container.
 */
describe("gateway in Docker: resume scenarios", { timeout: 900_000 }, () => {
  let daemon: DockerDaemon;
  let user: CliSandboxUser;
  let sshConfig = "";
  let failed = false;
  let startWithoutImage: Awaited<ReturnType<CliSandboxUser["run"]>> | undefined;

  const cli = (args: string[]) => user.run(args, { timeoutMs: 600_000 });
  const docker = (args: string[]) => daemon.docker(args, { allowFailure: true, timeoutMs: 120_000 });
  const containerRunning = async () =>
    (await docker(["container", "inspect", "-f", "{{.State.Running}}", CONTAINER])).stdout.trim() === "true";
  const fingerprint = async () =>
    JSON.parse((await daemon.docker(["exec", CONTAINER, "node", "-e", FINGERPRINT_SCRIPT])).stdout);
  const waitReady = (name: string) =>
    waitFor(
      async () => {
        const result = await cli(["sandbox", "get", name, "-o", "json"]);
        return result.code === 0 && JSON.parse(result.stdout).phase === "SANDBOX_PHASE_READY";
      },
      READY_TIMEOUT_MS,
      () => `sandbox ${name} did not come back READY`,
    );
  const expectSandboxIntact = async () => {
    await waitReady("keep");
    const exec = await cli(["sandbox", "exec", "keep", "--", "cat", "/sandbox/marker"]);
    expect(exec.stdout).toBe("marker-docker\n");
    const ssh = execFileSync("ssh", ["-F", sshConfig, "openshell-keep", "echo via-old-config"], {
      env: user.env,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(ssh).toBe("via-old-config\n");
  };

  /** Only there if the CLI wrongly started a gateway without the image (the daemon's store persists). */
  const removeNoImageGateway = async () => {
    await docker(["rm", "-f", `openshell-cluster-${NO_IMAGE}`]);
    await docker(["network", "rm", `openshell-cluster-${NO_IMAGE}`]);
    await docker(["volume", "rm", "-f", `openshell-cluster-${NO_IMAGE}`]);
  };

  beforeAll(async () => {
    daemon = await startDockerDaemon();
    await removeNoImageGateway();
    user = new CliSandboxUser({ DOCKER_HOST: daemon.host, OPENSHELL_GATEWAY_PORT: String(await freePort()) });
    // Only the explicit build step may put the image in the daemon. A previous run's image is
    // untagged (its layers stay under LAYER_CACHE, so the build below is a cache hit) and
    // `gateway start --docker` must then refuse, naming the step, instead of building it.
    if ((await docker(["image", "inspect", IMAGE])).code === 0) {
      await daemon.docker(["tag", IMAGE, LAYER_CACHE]);
      await daemon.docker(["image", "rm", IMAGE]);
    }
    startWithoutImage = await cli(["gateway", "start", "--docker", "--name", NO_IMAGE]);
    // The explicit, documented step before `gateway start --docker`.
    const build = spawnSync("bash", [BUILD_SCRIPT, "--docker-host", daemon.host], {
      encoding: "utf8",
      timeout: BUILD_TIMEOUT_MS,
    });
    if (build.status !== 0)
      throw new Error(`build-gateway-image.sh failed (${build.status ?? build.signal}):\n${build.stderr}`);
    await docker(["image", "rm", LAYER_CACHE]);
  }, BUILD_TIMEOUT_MS + 120_000);

  afterEach(async (context) => {
    if (context.task.result?.state !== "fail" || failed) return;
    failed = true;
    const logs = await docker(["logs", "--tail", "80", CONTAINER]);
    process.stderr.write(
      `container log:\n${logs.stdout}${logs.stderr}\ndockerd log:\n${daemon.logTail(4000)}\n`,
    );
  });

  afterAll(async () => {
    if (daemon) {
      await docker(["rm", "-f", CONTAINER]);
      await docker(["network", "rm", CONTAINER]);
      await docker(["volume", "rm", "-f", CONTAINER]);
      await removeNoImageGateway();
      await daemon.stop();
    }
    user?.cleanUp();
  }, 180_000);

  it("without the image, gateway start --docker fails naming the step that builds it", async () => {
    expect(startWithoutImage?.code).not.toBe(0);
    expect(startWithoutImage?.stderr).toContain(`the gateway image ${IMAGE} is not in this Docker daemon`);
    expect(startWithoutImage?.stderr).toContain("bash scripts/build-gateway-image.sh");
    expect((await docker(["container", "inspect", `openshell-cluster-${NO_IMAGE}`])).code).not.toBe(0);
    expect((await cli(["gateway", "list"])).stdout).not.toContain(NO_IMAGE);
  });

  it("starts a gateway in Docker and a sandbox in it", async () => {
    const started = await cli(["gateway", "start", "--docker", "--name", GATEWAY]);
    expect(started.code, started.stderr).toBe(0);
    expect(await containerRunning()).toBe(true);
    const inspect = JSON.parse((await daemon.docker(["container", "inspect", CONTAINER])).stdout)[0];
    expect(inspect.HostConfig.RestartPolicy.Name).toBe("unless-stopped");
    expect(inspect.HostConfig.PortBindings["8080/tcp"][0].HostIp).toBe("127.0.0.1");
    expect(inspect.Config.Hostname).toBe("openshell-dock");
    expect(inspect.Mounts[0]).toMatchObject({
      Type: "volume",
      Name: CONTAINER,
      Destination: "/var/lib/openshell",
    });

    const created = await cli([
      "sandbox",
      "create",
      "--name",
      "keep",
      "--",
      "sh",
      "-c",
      "echo marker-docker > /sandbox/marker && sync",
    ]);
    expect(created.code, created.stderr).toBe(0);
    sshConfig = join(user.root, "keep.ssh_config");
    writeFileSync(sshConfig, (await cli(["sandbox", "ssh-config", "keep"])).stdout);
    await expectSandboxIntact();
  });

  it("1. gateway start on a running gateway says 'already running' and exits 0", async () => {
    const again = await cli(["gateway", "start"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("already running");
  });

  it("2 + 3. stop + start keeps PKI and secrets; the sandbox returns READY with its files and the old ssh-config works", async () => {
    const before = await fingerprint();
    expect(Object.keys(before).some((key) => key.startsWith("secret/"))).toBe(true);
    const stopped = await cli(["gateway", "stop"]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(await containerRunning()).toBe(false);
    const status = await cli(["status"]);
    expect(status.code).toBe(3);
    const started = await cli(["gateway", "start"]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain("Reusing existing TLS certificates");
    expect(await fingerprint()).toEqual(before);
    await expectSandboxIntact();
  });

  it("4. docker kill + network removed: gateway start recovers", async () => {
    await daemon.docker(["kill", CONTAINER]);
    await daemon.docker(["network", "rm", CONTAINER]);
    const started = await cli(["gateway", "start"]);
    expect(started.code, started.stderr).toBe(0);
    await expectSandboxIntact();
  });

  it("5. docker rm -f with the volume left: gateway start resumes from the volume", async () => {
    await daemon.docker(["rm", "-f", CONTAINER]);
    expect((await docker(["volume", "inspect", CONTAINER])).code).toBe(0);
    const started = await cli(["gateway", "start"]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain("Resuming gateway from existing state");
    await expectSandboxIntact();
  });

  it("7. a dockerd restart brings the container back by itself and the sandbox returns READY", async () => {
    await daemon.restart();
    await waitFor(
      containerRunning,
      60_000,
      () => "the container did not come back after the dockerd restart",
    );
    await expectSandboxIntact();
  });

  it("sandbox create finds the Docker gateway stopped and resumes it first", async () => {
    await daemon.docker(["stop", CONTAINER]);
    const created = await cli([
      "sandbox",
      "create",
      "--name",
      "later",
      "--no-keep",
      "--",
      "cat",
      "/etc/hostname",
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain(`Gateway '${GATEWAY}' is not running — starting it.`);
    expect(created.stdout).toContain("openshell-sandbox");
    await expectSandboxIntact();
  });

  it("a failed resume removes the container and keeps the volume; create then recreates with a warning", async () => {
    expect((await cli(["gateway", "stop"])).code).toBe(0);
    await daemon.docker([
      "run",
      "--rm",
      "--entrypoint",
      "rm",
      "-v",
      `${CONTAINER}:/var/lib/openshell`,
      "openshell/gateway:dev",
      "/var/lib/openshell/pki/server.key",
    ]);
    const resume = await cli(["gateway", "start"]);
    expect(resume.code, resume.stderr).not.toBe(0);
    expect(resume.stderr).toContain("incomplete PKI");
    expect(resume.stderr).toContain("The volume is kept");
    expect((await docker(["container", "inspect", CONTAINER])).code).not.toBe(0);
    expect((await docker(["volume", "inspect", CONTAINER])).code).toBe(0);

    const created = await cli(["sandbox", "create", "--name", "fresh", "--", "echo", "recreated"]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain("recreating it from scratch");
    expect(created.stdout).toContain("recreated");
    const names = (await cli(["sandbox", "list", "--names"])).stdout.split("\n");
    expect(names).toContain("fresh");
    expect(names).not.toContain("keep");
  });

  it("destroy removes container, network and volume", async () => {
    const destroyed = await cli(["gateway", "destroy", "--yes"]);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect((await docker(["container", "inspect", CONTAINER])).code).not.toBe(0);
    expect((await docker(["network", "inspect", CONTAINER])).code).not.toBe(0);
    expect((await docker(["volume", "inspect", CONTAINER])).code).not.toBe(0);
  });
});
