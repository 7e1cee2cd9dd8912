import { create } from "@bufbuild/protobuf";
import { SandboxLogLineSchema, SandboxPhase } from "@openshell/proto";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
  supervisorTokenOf,
} from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// What a compromised sandbox would send: retitle the terminal, clear it, overwrite a line with a
// fake one, and a C1 CSI (one byte on terminals with 8-bit controls) that starts a colour.
const RETITLE = "\u001b]0;pwned\u0007";
const CLEAR = "\u001b[2J";
const OVERWRITE = "download ok\r\u001b[1A2024-01-01T00:00:00.000Z INFO  [gateway] all good";
const C1_CSI = "\u009b31mred";
const HOSTILE_MESSAGES = [`${RETITLE}title`, `${CLEAR}cleared`, OVERWRITE, C1_CSI];

/** Anything a terminal would act on (tab and line feed aside). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: what this test looks for
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/**
 * Sandbox-supplied text reaching the terminal through the built CLI and a real gateway (test
 * driver): log lines pushed with the sandbox's own supervisor credential, as a compromised
 * supervisor would, and a condition message the driver reports (a VM driver quotes the guest's
 * console there). Text output shows them escaped; `-o json` keeps them exact.
 */
describe("sandbox text on the terminal", () => {
  let stateDir: string;
  let gateway: RunningGateway;
  let user: CliSandboxUser;
  let sandboxId = "";
  const crashMessage = `${RETITLE}${CLEAR}guest console ${C1_CSI}`;
  const cli = (args: string[]) => user.run(["--gateway-endpoint", gateway.url, ...args]);

  beforeAll(async () => {
    stateDir = makeStateDir();
    gateway = await startGateway({ stateDir });
    user = new CliSandboxUser();
    const created = await gateway.grpc.createSandbox({ name: "noisy", spec: {} });
    sandboxId = created.sandbox!.id;
    await gateway.grpc.createSandbox({
      name: "crashed",
      spec: { environment: { TEST_DRIVER_ERROR: crashMessage } },
    });
    await waitFor(
      async () => (await gateway.grpc.getSandbox({ name: "crashed" })).sandbox?.phase === SandboxPhase.ERROR,
      10_000,
      () => "the crashed sandbox never reached ERROR",
    );
    const token = supervisorTokenOf(stateDir, sandboxId);
    await gateway.grpc.pushSandboxLogs(
      (async function* () {
        yield {
          sandboxId,
          logs: HOSTILE_MESSAGES.map((message, index) =>
            create(SandboxLogLineSchema, {
              timestampMs: BigInt(Date.now()),
              level: index === 0 ? `warn${CLEAR}` : "info",
              message,
              target: "hostile",
              fields: { note: `${RETITLE}field` },
            }),
          ),
        };
      })(),
      { headers: { authorization: `Bearer ${token}` } },
    );
  });

  afterAll(async () => {
    await gateway?.stop();
    user?.cleanUp();
    if (stateDir) removeStateDir(stateDir);
  });

  it("logs prints hostile lines escaped, one terminal line each, and exact in JSON", async () => {
    const text = await cli(["logs", "noisy", "--source", "sandbox"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toMatch(RAW_CONTROL);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(HOSTILE_MESSAGES.length);
    expect(lines[0]).toMatch(/ WARN\\x1b\[2J \[sandbox\] \\x1b\]0;pwned\\x07title$/);
    expect(lines[1]).toMatch(/ \[sandbox\] \\x1b\[2Jcleared$/);
    expect(lines[2]).toMatch(
      / \[sandbox\] download ok\\r\\x1b\[1A2024-01-01T00:00:00\.000Z INFO {2}\[gateway\] all good$/,
    );
    expect(lines[3]).toMatch(/ \[sandbox\] \\u009b31mred$/);

    const json = await cli(["logs", "noisy", "--source", "sandbox", "-o", "json"]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = json.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as { message: string; level: string; fields: Record<string, string> });
    expect(parsed.map((line) => line.message)).toEqual(HOSTILE_MESSAGES);
    expect(parsed[0]?.level).toBe(`warn${CLEAR}`);
    expect(parsed[0]?.fields).toEqual({ note: `${RETITLE}field` });
  });

  it("list, get and errors quoting a condition message print it escaped; JSON keeps it exact", async () => {
    const escapedCrash = "\\x1b]0;pwned\\x07\\x1b[2Jguest console \\u009b31mred";

    const list = await cli(["sandbox", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).not.toMatch(RAW_CONTROL);
    expect(list.stdout).toContain(`Crashed: ${escapedCrash}`);

    const get = await cli(["sandbox", "get", "crashed"]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).not.toMatch(RAW_CONTROL);
    expect(get.stdout).toMatch(new RegExp(`Detail: +Crashed: ${escapedCrash.replace(/[\\[\]]/g, "\\$&")}`));

    const exec = await cli(["sandbox", "exec", "crashed", "--", "true"]);
    expect(exec.code).not.toBe(0);
    expect(exec.stderr).not.toMatch(RAW_CONTROL);
    expect(exec.stderr).toContain(escapedCrash);

    // create follows the platform events and the condition, then fails with the reason.
    const created = await cli([
      "sandbox",
      "create",
      "--name",
      "crashing",
      "--env",
      `TEST_DRIVER_ERROR=${crashMessage}`,
    ]);
    expect(created.code).not.toBe(0);
    expect(created.stderr).not.toMatch(RAW_CONTROL);
    expect(created.stderr).toContain(`Crashed: ${escapedCrash}`);

    const json = JSON.parse((await cli(["sandbox", "get", "crashed", "-o", "json"])).stdout) as {
      status: { conditions: Array<{ type: string; message: string }> };
    };
    expect(json.status.conditions.find((condition) => condition.type === "Ready")?.message).toBe(
      crashMessage,
    );
  });
});
