import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { freePort } from "@openshell/testing/process";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { checkCodingAgent, checkDenyAll, DENY_ALL } from "./policy-examples-scenario.js";

/**
 * The shipped example policies in a VM sandbox (`policy-examples-scenario.ts`), one VM boot: the
 * CLI's default local gateway, created with deny-all, then switched to coding-agent.
 */
describe("example policies through the CLI", () => {
  let user: CliSandboxUser;

  afterEach((context) => user?.showLogOnFailure(context.task.result?.state));
  afterAll(async () => user?.dispose());

  it("create --policy deny-all.yaml: the sandbox user, Landlock, and every connection refused", async () => {
    user = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(await freePort()) });
    const created = await user.run(["sandbox", "create", "--name", "agent", "--policy", DENY_ALL]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout.trim()).toBe("agent");
    await checkDenyAll(user, "agent");
  }, 600_000);

  it("policy set --wait coding-agent.yaml: each host only from its binaries, others refused", async () => {
    await checkCodingAgent(user, "agent");
  }, 300_000);
});
