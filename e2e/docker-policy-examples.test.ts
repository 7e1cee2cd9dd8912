import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { freePort, isAlive } from "@openshell/testing/process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { checkCodingAgent, checkDenyAll, DENY_ALL } from "./policy-examples-scenario.js";

/**
 * The shipped example policies (`policy-examples-scenario.ts`, the VM test's checks) in a Docker
 * sandbox: `gateway start --driver docker` against a PRIVATE dockerd of this file's own (run dir,
 * data root, address pool), the default image (the VM runtime's root filesystem), one container
 * created with deny-all, then switched to coding-agent.
 */
const MANAGED = "label=openshell.ai/managed-by=openshell";
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("docker-policy-examples.test.ts skipped: a private dockerd needs root");

describe.skipIf(!isRoot)("example policies in a Docker sandbox through the CLI (private dockerd)", () => {
  let daemon: DockerDaemon | undefined;
  let user: CliSandboxUser | undefined;

  beforeAll(async () => {
    daemon = await startDockerDaemon({
      runDir: "/run/openshell-pex-docker",
      dataRoot: "/var/lib/openshell-pex-docker",
      addressPool: "base=10.218.0.0/16,size=24",
    });
    user = new CliSandboxUser({
      DOCKER_HOST: daemon.host,
      OPENSHELL_DOCKER_NETWORK: "openshell-pex-e2e",
      OPENSHELL_GATEWAY_PORT: String(await freePort()),
    });
  }, 600_000);

  afterEach((context) => user?.showLogOnFailure(context.task.result?.state));

  afterAll(async () => {
    const pid = user?.gatewayPid();
    if (pid && isAlive(pid)) process.kill(pid, "SIGKILL");
    if (daemon) {
      await daemon.removeMatching(MANAGED);
      await daemon.stop();
    }
    user?.cleanUp();
  }, 180_000);

  it("create --policy deny-all.yaml: the sandbox user, Landlock, and every connection refused", async () => {
    const cli = user as CliSandboxUser;
    const started = await cli.run(["gateway", "start", "--driver", "docker"], { timeoutMs: 600_000 });
    expect(started.code, started.stderr).toBe(0);
    const created = await cli.run(["sandbox", "create", "--name", "agent", "--policy", DENY_ALL], {
      timeoutMs: 300_000,
    });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout.trim()).toBe("agent");
    const status = JSON.parse((await cli.run(["status", "-o", "json"])).stdout);
    expect(status).toMatchObject({ driver: "docker" });
    await checkDenyAll(cli, "agent");
  }, 900_000);

  it("policy set --wait coding-agent.yaml: each host only from its binaries, others refused", async () => {
    await checkCodingAgent(user as CliSandboxUser, "agent");
  }, 300_000);
});
