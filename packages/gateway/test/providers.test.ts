import { Code } from "@connectrpc/connect";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startGateway,
  supervisorTokenOf,
} from "@openshell/testing/gateway-harness";
import { afterEach, describe, expect, it } from "vitest";

const running: RunningGateway[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const gw of running.splice(0)) await gw.stop("SIGKILL");
  for (const dir of dirs.splice(0)) removeStateDir(dir);
});

async function gateway(stateDir = makeStateDir()) {
  if (!dirs.includes(stateDir)) dirs.push(stateDir);
  const gw = await startGateway({ stateDir });
  running.push(gw);
  return gw;
}

describe("providers", () => {
  it("creates, redacts, merges on update, lists and deletes; survives a restart", async () => {
    const gw = await gateway();
    const created = await gw.grpc.createProvider({
      provider: {
        name: "work-claude",
        type: "claude",
        credentials: { ANTHROPIC_API_KEY: "sk-secret" },
        config: { region: "eu" },
      },
    });
    expect(created.provider).toMatchObject({
      name: "work-claude",
      type: "claude",
      credentials: { ANTHROPIC_API_KEY: "REDACTED" },
      config: { region: "eu" },
    });
    expect(created.provider?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(
      await rpcFailure(gw.grpc.createProvider({ provider: { name: "work-claude", type: "claude" } })),
    ).toEqual({
      code: Code.AlreadyExists,
      message: "provider already exists",
    });
    expect(await rpcFailure(gw.grpc.createProvider({ provider: { name: "x", type: "" } }))).toEqual({
      code: Code.InvalidArgument,
      message: "provider.type is required",
    });
    expect(
      await rpcFailure(
        gw.grpc.createProvider({
          provider: { name: "big", type: "generic", credentials: { K: "v".repeat(8193) } },
        }),
      ),
    ).toMatchObject({ code: Code.InvalidArgument });

    const updated = await gw.grpc.updateProvider({
      provider: { name: "work-claude", credentials: { EXTRA: "e" }, config: { region: "" } },
    });
    expect(updated.provider?.credentials).toEqual({ ANTHROPIC_API_KEY: "REDACTED", EXTRA: "REDACTED" });
    expect(updated.provider?.config).toEqual({});
    expect(
      await rpcFailure(gw.grpc.updateProvider({ provider: { name: "work-claude", type: "codex" } })),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "provider type cannot be changed; delete and recreate the provider",
    });
    expect((await gw.grpc.listProviders({})).providers.map((p) => p.name)).toEqual(["work-claude"]);

    await gw.stop("SIGTERM");
    running.splice(0);
    const again = await gateway(gw.stateDir);
    expect((await again.grpc.getProvider({ name: "work-claude" })).provider?.credentials).toEqual({
      ANTHROPIC_API_KEY: "REDACTED",
      EXTRA: "REDACTED",
    });
    expect((await again.grpc.deleteProvider({ name: "work-claude" })).deleted).toBe(true);
    expect((await again.grpc.deleteProvider({ name: "work-claude" })).deleted).toBe(false);
    expect(await rpcFailure(again.grpc.getProvider({ name: "work-claude" }))).toMatchObject({
      code: Code.NotFound,
    });
  });

  it("gives a sandbox's real credentials only to that sandbox's supervisor, first provider winning", async () => {
    const gw = await gateway();
    await gw.grpc.createProvider({
      provider: { name: "first", type: "generic", credentials: { TOKEN: "one", "bad-key": "x" } },
    });
    await gw.grpc.createProvider({
      provider: { name: "second", type: "generic", credentials: { TOKEN: "two", OTHER: "o" } },
    });
    const a = (
      await gw.grpc.createSandbox({ name: "with-providers", spec: { providers: ["first", "second"] } })
    ).sandbox!;
    const b = (await gw.grpc.createSandbox({ name: "other", spec: {} })).sandbox!;
    expect(
      await rpcFailure(gw.grpc.createSandbox({ name: "missing", spec: { providers: ["nope"] } })),
    ).toMatchObject({
      code: Code.FailedPrecondition,
    });

    const asSupervisor = (sandboxId: string) => ({
      headers: { authorization: `Bearer ${supervisorTokenOf(gw.stateDir, sandboxId)}` },
    });
    const env = await gw.grpc.getSandboxProviderEnvironment({ sandboxId: a.id }, asSupervisor(a.id));
    expect(env.environment).toEqual({ TOKEN: "one", OTHER: "o" });
    expect(await rpcFailure(gw.grpc.getSandboxProviderEnvironment({ sandboxId: a.id }))).toMatchObject({
      code: Code.Unauthenticated,
    });
    expect(
      await rpcFailure(gw.grpc.getSandboxProviderEnvironment({ sandboxId: a.id }, asSupervisor(b.id))),
    ).toMatchObject({ code: Code.PermissionDenied });
  });
});
