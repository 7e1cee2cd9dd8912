import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** What the test driver was asked to create (its state file), or nothing. */
function driverSandboxNames(stateDir: string): string[] {
  const file = join(stateDir, "drv", "sandboxes.json");
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, "utf8")) as string[]).map(
    (row) => (JSON.parse(row) as { name: string }).name,
  );
}

describe("CreateSandbox refuses environment the system sets itself", () => {
  let gw: RunningGateway;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = makeStateDir();
    gw = await startGateway({ stateDir });
  });

  afterAll(async () => {
    await gw?.stop("SIGKILL");
    removeStateDir(stateDir);
  });

  it("OPENSHELL_SUPERVISOR_TOKEN: INVALID_ARGUMENT naming it, over gRPC and Connect, nothing stored", async () => {
    for (const client of [gw.grpc, gw.connect]) {
      const failure = await rpcFailure(
        client.createSandbox({ name: "hijack", spec: { environment: { OPENSHELL_SUPERVISOR_TOKEN: "x" } } }),
      );
      expect(failure.code).toBe(Code.InvalidArgument);
      expect(failure.message).toMatch(
        /^spec\.environment sets OPENSHELL_SUPERVISOR_TOKEN, which is reserved/,
      );
    }
    const viaTemplate = await rpcFailure(
      gw.grpc.createSandbox({
        name: "hijack",
        spec: { template: { environment: { OPENSHELL_ENDPOINT: "http://evil:1" } } },
      }),
    );
    expect(viaTemplate.code).toBe(Code.InvalidArgument);
    expect(viaTemplate.message).toMatch(
      /^spec\.template\.environment sets OPENSHELL_ENDPOINT, which is reserved/,
    );

    expect((await gw.grpc.listSandboxes({})).sandboxes).toEqual([]);
    expect((await rpcFailure(gw.grpc.getSandbox({ name: "hijack" }))).code).toBe(Code.NotFound);
    expect(driverSandboxNames(stateDir)).toEqual([]);
  });

  it("a value with a newline is refused as exec refuses it; an ordinary environment is accepted", async () => {
    const failure = await rpcFailure(
      gw.grpc.createSandbox({ name: "multiline", spec: { environment: { GREETING: "a\nb" } } }),
    );
    expect(failure).toEqual({
      code: Code.InvalidArgument,
      message: "spec.environment value of GREETING contains NUL, CR or LF; values must be a single line",
    });
    const created = await gw.grpc.createSandbox({
      name: "plain",
      spec: { environment: { GREETING: "hello", PATH: "/sandbox/.venv/bin:/usr/bin:/bin" } },
    });
    expect(created.sandbox?.spec?.environment).toEqual({
      GREETING: "hello",
      PATH: "/sandbox/.venv/bin:/usr/bin:/bin",
    });
    expect(driverSandboxNames(stateDir)).toEqual(["plain"]);
  });
});
