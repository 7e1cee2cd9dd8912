import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { SandboxPhase } from "@openshell/proto";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { makeStateDir, type RunningGateway, rpcFailure } from "@openshell/testing/gateway-harness";
import {
  makeWorkdir,
  type ReadySandbox,
  startGatewayWithSupervisors,
  stopReadySandbox,
  supervisorLog,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const DRIVER_REFUSAL =
  "the compute driver 'test' cannot fork sandboxes; fork needs the VM driver (openshell gateway start --driver vm)";

/**
 * ForkSandbox's refusals against a real gateway whose test driver cannot fork (GetCapabilities
 * without supports_fork), through gRPC and through the built CLI: every one leaves the store and the
 * driver as they were. One gateway and one READY sandbox (a real supervisor on this host) serve all
 * cases; the STOPPED case stops it, so it runs last. The fork itself needs the VM driver (its e2e
 * test lives with that driver).
 */
describe("sandbox fork on a driver that cannot fork", () => {
  let sandbox: ReadySandbox;
  let gw: RunningGateway;
  let user: CliSandboxUser;
  const cli = (args: string[]) => user.run(["--gateway-endpoint", gw.url, ...args]);

  const names = async () =>
    (await gw.grpc.listSandboxes({})).sandboxes.map((s) => `${s.name} ${SandboxPhase[s.phase]}`);
  /** The sandbox ids the test driver holds (its state file). */
  const driverIds = () =>
    (JSON.parse(readFileSync(join(sandbox.stateDir, "drv", "sandboxes.json"), "utf8")) as string[]).map(
      (row) => (JSON.parse(row) as { id: string }).id,
    );

  beforeAll(async () => {
    const stateDir = makeStateDir();
    const workdir = makeWorkdir();
    sandbox = { stateDir, workdir, id: "", gw: undefined as unknown as RunningGateway };
    gw = await startGatewayWithSupervisors({ stateDir, workdir });
    sandbox.gw = gw;
    sandbox.id = (await gw.grpc.createSandbox({ name: "src", spec: {} })).sandbox!.id;
    await waitForPhase(gw, "src", SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\nsupervisor log:\n${supervisorLog(stateDir, sandbox.id)}`);
    });
    user = new CliSandboxUser();
  });

  afterAll(async () => {
    await user?.dispose();
    if (sandbox) await stopReadySandbox(sandbox, "SIGKILL");
  });

  it("gRPC: refused with FAILED_PRECONDITION naming the driver, with and without a new name; nothing stored", async () => {
    const before = await names();
    expect(before).toEqual(["src READY"]);
    for (const newName of ["copy", ""]) {
      expect(await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName }))).toEqual({
        code: Code.FailedPrecondition,
        message: DRIVER_REFUSAL,
      });
    }
    expect(await names()).toEqual(before);
    expect(driverIds()).toEqual([sandbox.id]);
    expect(gw.output()).not.toContain("accepted as a fork");
  });

  it("gRPC: input and source errors come first, with their own codes", async () => {
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "", newName: "copy" }))).toEqual({
      code: Code.InvalidArgument,
      message: "name is required",
    });
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "nope", newName: "copy" }))).toEqual({
      code: Code.NotFound,
      message: "sandbox 'nope' not found; 'openshell sandbox list' shows the sandboxes that exist",
    });
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName: "src" }))).toEqual({
      code: Code.AlreadyExists,
      message: "sandbox 'src' already exists",
    });
    const invalid = await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName: "Bad_Name" }));
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.message).toContain("sandbox name 'Bad_Name' is invalid");
    expect(await names()).toEqual(["src READY"]);
  });

  it("CLI: the gateway's refusals with their exit codes; an empty --name never reaches it", async () => {
    const cases: [string[], number, string][] = [
      [["src", "--name", "copy"], 5, DRIVER_REFUSAL],
      [["src"], 5, DRIVER_REFUSAL],
      [["nope"], 4, "sandbox 'nope' not found"],
      [["src", "--name", "src"], 1, "sandbox 'src' already exists"],
      [["src", "--name", "Bad_Name"], 2, "sandbox name 'Bad_Name' is invalid"],
      [["src", "--name", ""], 2, "--name must not be empty"],
    ];
    for (const [args, code, message] of cases) {
      const result = await cli(["sandbox", "fork", ...args]);
      expect({ args, code: result.code }).toEqual({ args, code });
      expect(result.stderr).toContain(message);
      expect(result.stdout).toBe("");
    }
    expect(await names()).toEqual(["src READY"]);
  });

  it("a STOPPED source: FAILED_PRECONDITION saying to start it first (gRPC and CLI)", async () => {
    await gw.grpc.stopSandbox({ name: "src" });
    await waitForPhase(gw, "src", SandboxPhase.STOPPED);
    const message = "sandbox 'src' is STOPPED; only a READY sandbox can be forked: start it first";
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName: "copy" }))).toEqual({
      code: Code.FailedPrecondition,
      message,
    });
    const result = await cli(["sandbox", "fork", "src", "--name", "copy"]);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(message);
    expect(await names()).toEqual(["src STOPPED"]);
  });
});
