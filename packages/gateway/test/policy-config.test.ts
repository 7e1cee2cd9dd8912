import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type GatewayMessage,
  OpenShell,
  PolicyStatus,
  type SandboxSpecSchema,
  SupervisorMessageSchema,
  sandboxv1,
} from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startGateway,
  supervisorTokenOf,
} from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// One gateway for the whole file (restarted in place by the persistence test).
let gw: RunningGateway;
const stateDir = makeStateDir();

beforeAll(async () => {
  gw = await startGateway({ stateDir });
}, 30_000);

afterAll(async () => {
  await gw?.stop("SIGKILL");
  removeStateDir(stateDir);
});

type PolicyInit = Exclude<MessageInitShape<typeof sandboxv1.SandboxPolicySchema>, { $typeName: string }>;

function policy(extra: PolicyInit = {}): sandboxv1.SandboxPolicy {
  return create(sandboxv1.SandboxPolicySchema, {
    version: 1,
    filesystem: { includeWorkdir: true, readOnly: ["/usr", "/lib"], readWrite: ["/sandbox", "/tmp"] },
    landlock: { compatibility: "best_effort" },
    process: { runAsUser: "sandbox", runAsGroup: "sandbox" },
    ...extra,
  });
}

/** A policy allowing `host:443` to curl under rule `key`. */
function withRule(key: string, host = `${key.replaceAll("_", "-")}.example.com`): sandboxv1.SandboxPolicy {
  return policy({
    networkPolicies: {
      [key]: { name: key, endpoints: [{ host, port: 443 }], binaries: [{ path: "/usr/bin/curl" }] },
    },
  });
}

const asSupervisor = (sandboxId: string) => ({
  headers: { authorization: `Bearer ${supervisorTokenOf(gw.stateDir, sandboxId)}` },
});

async function sandbox(name: string, spec: MessageInitShape<typeof SandboxSpecSchema> = {}) {
  return (await gw.grpc.createSandbox({ name, spec })).sandbox!;
}

async function history(name: string, global = false) {
  const { revisions } = await gw.grpc.listSandboxPolicies({ name, global });
  return revisions.map((r) => [r.version, PolicyStatus[r.status]]);
}

const boolSetting = (value: boolean) => ({ value: { case: "boolValue" as const, value } });

describe("UpdateConfig input", () => {
  it("needs exactly one of policy, setting_key, merge_operations, and a sandbox that exists", async () => {
    await sandbox("args");
    expect(await rpcFailure(gw.grpc.updateConfig({ name: "args" }))).toEqual({
      code: Code.InvalidArgument,
      message: "one of policy, setting_key, or merge_operations must be provided",
    });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({ name: "args", policy: policy(), settingKey: "ocsf_json_enabled" }),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "policy, setting_key, and merge_operations are mutually exclusive",
    });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({
          name: "args",
          policy: policy(),
          mergeOperations: [{ operation: { case: "removeRule", value: { ruleName: "x" } } }],
        }),
      ),
    ).toMatchObject({ code: Code.InvalidArgument });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({
          global: true,
          mergeOperations: [{ operation: { case: "removeRule", value: { ruleName: "x" } } }],
        }),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "merge_operations are not supported for global policy updates",
    });
    expect(
      await rpcFailure(gw.grpc.updateConfig({ global: true, policy: policy(), deleteSetting: true })),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "delete_setting cannot be combined with policy payload",
    });
    expect(await rpcFailure(gw.grpc.updateConfig({ policy: policy() }))).toEqual({
      code: Code.InvalidArgument,
      message: "name is required for sandbox-scoped updates",
    });
    expect(await rpcFailure(gw.grpc.updateConfig({ name: "ghost", policy: policy() }))).toMatchObject({
      code: Code.NotFound,
      message: expect.stringContaining("sandbox 'ghost' not found"),
    });
    expect(await rpcFailure(gw.grpc.getSandboxPolicyStatus({ name: "ghost" }))).toMatchObject({
      code: Code.NotFound,
    });
    expect(await rpcFailure(gw.grpc.listSandboxPolicies({ name: "ghost" }))).toMatchObject({
      code: Code.NotFound,
    });
    expect(await rpcFailure(gw.grpc.getSandboxPolicyStatus({ name: "args" }))).toEqual({
      code: Code.NotFound,
      message: "no policy revision found for this sandbox",
    });
    expect(await history("args")).toEqual([]);
  });
});

describe("CreateSandbox", () => {
  it.each([
    [
      "run_as_user root",
      policy({ process: { runAsUser: "root", runAsGroup: "sandbox" } }),
      "run_as_user must be 'sandbox', got 'root'",
    ],
    [
      "a '..' path",
      policy({ filesystem: { readOnly: ["/usr/../etc"] } }),
      "path contains '..' traversal component: /usr/../etc",
    ],
    ["read_write /", policy({ filesystem: { readWrite: ["/"] } }), "read-write path is overly broad: /"],
  ])("refuses a policy with %s before anything is created", async (_, unsafe, reason) => {
    const name = `unsafe-${Math.random().toString(36).slice(2, 8)}`;
    const failure = await rpcFailure(gw.grpc.createSandbox({ name, spec: { policy: unsafe } }));
    expect(failure.code).toBe(Code.InvalidArgument);
    expect(failure.message).toMatch(/^policy contains unsafe content: /);
    expect(failure.message).toContain(reason);
    expect(await rpcFailure(gw.grpc.getSandbox({ name }))).toMatchObject({ code: Code.NotFound });
  });

  it("fills an empty process identity with 'sandbox'", async () => {
    const created = await sandbox("identity", { policy: policy({ process: {} }) });
    expect(created.spec?.policy?.process).toMatchObject({ runAsUser: "sandbox", runAsGroup: "sandbox" });
  });
});

describe("revision lifecycle", () => {
  it("backfills v1, versions new policies, keeps the same version for the same policy, and follows the supervisor's reports", async () => {
    const sb = await sandbox("lifecycle", { policy: policy() });
    const other = await sandbox("lifecycle-other");

    const first = await gw.grpc.getSandboxConfig({ sandboxId: sb.id }, asSupervisor(sb.id));
    expect(first).toMatchObject({
      version: 1,
      policySource: sandboxv1.PolicySource.SANDBOX,
      globalPolicyVersion: 0,
    });
    expect(first.policyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(first.policy?.filesystem?.readOnly).toEqual(["/usr", "/lib"]);
    expect(first.settings.ocsf_json_enabled).toBeDefined();
    expect(await history("lifecycle")).toEqual([[1, "LOADED"]]);
    // Unchanged config: the same revision number.
    expect((await gw.grpc.getSandboxConfig({ sandboxId: sb.id })).configRevision).toBe(first.configRevision);

    const v2 = await gw.grpc.updateConfig({ name: "lifecycle", policy: withRule("github") });
    expect(v2.version).toBe(2);
    expect(v2.policyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(v2.policyHash).not.toBe(first.policyHash);
    expect(await gw.grpc.updateConfig({ name: "lifecycle", policy: withRule("github") })).toMatchObject({
      version: 2,
      policyHash: v2.policyHash,
    });
    expect(await history("lifecycle")).toEqual([
      [2, "PENDING"],
      [1, "SUPERSEDED"],
    ]);
    const config2 = await gw.grpc.getSandboxConfig({ sandboxId: sb.id }, asSupervisor(sb.id));
    expect(config2).toMatchObject({ version: 2, policyHash: v2.policyHash });
    expect(config2.configRevision).not.toBe(first.configRevision);

    // Reports: only the sandbox's own supervisor, only LOADED/FAILED of a revision that exists.
    const report = { sandboxId: sb.id, version: 2, status: PolicyStatus.LOADED };
    expect(await rpcFailure(gw.grpc.reportPolicyStatus(report))).toMatchObject({
      code: Code.Unauthenticated,
    });
    expect(await rpcFailure(gw.grpc.reportPolicyStatus(report, asSupervisor(other.id)))).toMatchObject({
      code: Code.PermissionDenied,
    });
    expect(
      await rpcFailure(gw.grpc.reportPolicyStatus({ ...report, version: 0 }, asSupervisor(sb.id))),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "version is required",
    });
    expect(
      await rpcFailure(
        gw.grpc.reportPolicyStatus({ ...report, status: PolicyStatus.PENDING }, asSupervisor(sb.id)),
      ),
    ).toEqual({ code: Code.InvalidArgument, message: "status must be LOADED or FAILED" });
    expect(
      await rpcFailure(gw.grpc.reportPolicyStatus({ ...report, version: 99 }, asSupervisor(sb.id))),
    ).toEqual({
      code: Code.NotFound,
      message: "policy revision not found",
    });
    expect(
      await rpcFailure(gw.grpc.getSandboxConfig({ sandboxId: sb.id }, asSupervisor(other.id))),
    ).toMatchObject({
      code: Code.PermissionDenied,
    });
    expect(await rpcFailure(gw.grpc.getSandboxConfig({ sandboxId: "no-such-id" }))).toEqual({
      code: Code.NotFound,
      message: "sandbox not found",
    });

    await gw.grpc.reportPolicyStatus(report, asSupervisor(sb.id));
    expect((await gw.grpc.getSandbox({ name: "lifecycle" })).sandbox?.currentPolicyVersion).toBe(2);
    expect(
      (await gw.grpc.listSandboxes({})).sandboxes.find((s) => s.name === "lifecycle")?.currentPolicyVersion,
    ).toBe(2);
    const loaded = await gw.grpc.getSandboxPolicyStatus({ name: "lifecycle" });
    expect(loaded.activeVersion).toBe(2);
    expect(loaded.revision).toMatchObject({
      version: 2,
      status: PolicyStatus.LOADED,
      policyHash: v2.policyHash,
    });
    expect(loaded.revision?.loadedAtMs).toBeGreaterThan(0n);
    expect(loaded.revision?.policy?.networkPolicies.github?.endpoints[0]?.host).toBe("github.example.com");

    // A revision the supervisor cannot load: recorded with its error, v2 stays in force.
    const v3 = await gw.grpc.updateConfig({ name: "lifecycle", policy: withRule("gitlab") });
    expect(v3.version).toBe(3);
    await gw.grpc.reportPolicyStatus(
      { sandboxId: sb.id, version: 3, status: PolicyStatus.FAILED, loadError: "opa: bad rule" },
      asSupervisor(sb.id),
    );
    const failed = await gw.grpc.getSandboxPolicyStatus({ name: "lifecycle", version: 3 });
    expect(failed).toMatchObject({
      activeVersion: 2,
      revision: { version: 3, status: PolicyStatus.FAILED, loadError: "opa: bad rule" },
    });
    expect((await gw.grpc.getSandbox({ name: "lifecycle" })).sandbox?.currentPolicyVersion).toBe(2);
    expect(await history("lifecycle")).toEqual([
      [3, "FAILED"],
      [2, "SUPERSEDED"],
      [1, "SUPERSEDED"],
    ]);
    expect((await gw.grpc.getSandboxPolicyStatus({ name: "lifecycle", version: 1 })).revision?.version).toBe(
      1,
    );

    // History: newest first, without the policy payload, paged.
    const page = await gw.grpc.listSandboxPolicies({ name: "lifecycle", limit: 1, offset: 1 });
    expect(page.revisions.map((r) => r.version)).toEqual([2]);
    expect(page.revisions[0]?.policy).toBeUndefined();
  });

  it("refuses changes a live sandbox cannot take and unsafe content, storing nothing", async () => {
    await sandbox("static", { policy: policy() });
    const before = await history("static");
    const landlock = await rpcFailure(
      gw.grpc.updateConfig({
        name: "static",
        policy: policy({ landlock: { compatibility: "hard_requirement" } }),
      }),
    );
    expect(landlock.code).toBe(Code.InvalidArgument);
    expect(landlock.message).toContain("landlock policy cannot be changed on a live sandbox");
    const removed = await rpcFailure(
      gw.grpc.updateConfig({
        name: "static",
        policy: policy({
          filesystem: { includeWorkdir: true, readOnly: ["/usr"], readWrite: ["/sandbox", "/tmp"] },
        }),
      }),
    );
    expect(removed.code).toBe(Code.InvalidArgument);
    expect(removed.message).toContain("filesystem read_only path '/lib' cannot be removed on a live sandbox");
    const unsafe = await rpcFailure(
      gw.grpc.updateConfig({
        name: "static",
        policy: policy({
          filesystem: {
            includeWorkdir: true,
            readOnly: ["/usr", "/lib", "/x/../y"],
            readWrite: ["/sandbox", "/tmp"],
          },
        }),
      }),
    );
    expect(unsafe.code).toBe(Code.InvalidArgument);
    expect(unsafe.message).toMatch(/^policy contains unsafe content: .*'\.\.' traversal/);
    expect(await history("static")).toEqual(before);
    // Additive filesystem changes are fine.
    expect(
      (
        await gw.grpc.updateConfig({
          name: "static",
          policy: policy({
            filesystem: {
              includeWorkdir: true,
              readOnly: ["/usr", "/lib", "/opt"],
              readWrite: ["/sandbox", "/tmp"],
            },
          }),
        })
      ).version,
    ).toBe(1);
  });

  it("serves nothing for a sandbox without a policy, then backfills spec.policy from the first one it is given", async () => {
    const sb = await sandbox("discovering");
    const empty = await gw.grpc.getSandboxConfig({ sandboxId: sb.id }, asSupervisor(sb.id));
    expect(empty).toMatchObject({ version: 0, policyHash: "" });
    expect(empty.policy).toBeUndefined();
    // What the supervisor does after discovering its image's policy (§3.4), with its credential.
    const synced = await gw.grpc.updateConfig(
      { name: "discovering", policy: withRule("pypi") },
      asSupervisor(sb.id),
    );
    expect(synced.version).toBe(1);
    expect(
      (await gw.grpc.getSandbox({ name: "discovering" })).sandbox?.spec?.policy?.networkPolicies.pypi,
    ).toBeDefined();
    expect(await history("discovering")).toEqual([[1, "PENDING"]]);
    // A supervisor credential may only sync its own sandbox's policy.
    expect(
      await rpcFailure(
        gw.grpc.updateConfig(
          { name: "discovering", settingKey: "ocsf_json_enabled", settingValue: boolSetting(true) },
          asSupervisor(sb.id),
        ),
      ),
    ).toEqual({
      code: Code.PermissionDenied,
      message: "sandbox secret may only perform sandbox policy sync",
    });
    expect(
      await rpcFailure(gw.grpc.updateConfig({ global: true, policy: policy() }, asSupervisor(sb.id))),
    ).toEqual({ code: Code.PermissionDenied, message: "sandbox secret cannot mutate global config" });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({ name: "lifecycle", policy: withRule("x") }, asSupervisor(sb.id)),
      ),
    ).toMatchObject({ code: Code.PermissionDenied });
    expect((await gw.grpc.getSandboxPolicyStatus({ name: "lifecycle" })).revision?.version).toBe(3);
  });

  it("merges operations into the latest revision; the same result keeps the version; a bad operation stores nothing", async () => {
    await sandbox("merging", { policy: withRule("base") });
    const add = {
      operation: {
        case: "addRule" as const,
        value: {
          ruleName: "npm",
          rule: {
            name: "npm",
            endpoints: [{ host: "registry.npmjs.org", port: 443 }],
            binaries: [{ path: "/usr/bin/node" }],
          },
        },
      },
    };
    const merged = await gw.grpc.updateConfig({ name: "merging", mergeOperations: [add] });
    expect(merged.version).toBe(1);
    await waitFor(
      () => gw.output().includes("CONFIG:MERGED [INFO] gateway merged 1 incremental policy operation(s)"),
      5000,
      () => "no CONFIG audit line for the merge",
    );
    const status = await gw.grpc.getSandboxPolicyStatus({ name: "merging" });
    expect(Object.keys(status.revision?.policy?.networkPolicies ?? {}).sort()).toEqual(["base", "npm"]);
    expect(await gw.grpc.updateConfig({ name: "merging", mergeOperations: [add] })).toMatchObject({
      version: 1,
      policyHash: merged.policyHash,
    });
    const removed = await gw.grpc.updateConfig({
      name: "merging",
      mergeOperations: [{ operation: { case: "removeRule", value: { ruleName: "npm" } } }],
    });
    expect(removed.version).toBe(2);
    const bad = await rpcFailure(
      gw.grpc.updateConfig({
        name: "merging",
        mergeOperations: [{ operation: { case: "addRule", value: { ruleName: "", rule: { name: "" } } } }],
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(await history("merging")).toEqual([
      [2, "PENDING"],
      [1, "SUPERSEDED"],
    ]);
  });
});

describe("concurrency", () => {
  it("20 parallel clients on one sandbox: every distinct policy lands as its own version, identical ones share one", async () => {
    await sandbox("contended", { policy: policy() });
    const clients = Array.from({ length: 20 }, () =>
      createClient(OpenShell, createGrpcTransport({ baseUrl: gw.url })),
    );
    const distinct = await Promise.all(
      clients.map((client, i) => client.updateConfig({ name: "contended", policy: withRule(`rule_${i}`) })),
    );
    const versions = distinct.map((r) => r.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(distinct.map((r) => r.policyHash)).size).toBe(20);
    const revisions = (await gw.grpc.listSandboxPolicies({ name: "contended", limit: 100 })).revisions;
    expect(revisions.map((r) => r.version)).toEqual(Array.from({ length: 20 }, (_, i) => 20 - i));
    expect(revisions.filter((r) => r.status === PolicyStatus.PENDING).map((r) => r.version)).toEqual([20]);

    const same = await Promise.all(
      clients.map((client) => client.updateConfig({ name: "contended", policy: withRule("shared") })),
    );
    expect(new Set(same.map((r) => r.version))).toEqual(new Set([21]));

    // Merge operations from 20 clients: none is lost.
    const merges = await Promise.all(
      clients.map((client, i) =>
        client.updateConfig({
          name: "contended",
          mergeOperations: [
            {
              operation: {
                case: "addRule",
                value: {
                  ruleName: `m_${i}`,
                  rule: {
                    name: `m_${i}`,
                    endpoints: [{ host: `m${i}.example.com`, port: 443 }],
                    binaries: [{ path: "/usr/bin/curl" }],
                  },
                },
              },
            },
          ],
        }),
      ),
    );
    expect(new Set(merges.map((r) => r.version)).size).toBe(20);
    const final = await gw.grpc.getSandboxPolicyStatus({ name: "contended" });
    expect(final.revision?.version).toBe(41);
    const keys = Object.keys(final.revision?.policy?.networkPolicies ?? {});
    for (let i = 0; i < 20; i++) expect(keys).toContain(`m_${i}`);
  });
});

describe("global policy and settings", () => {
  it("a global policy overrides every sandbox and blocks sandbox updates until deleted", async () => {
    const sb = await sandbox("governed", { policy: policy() });
    const global = await gw.grpc.updateConfig({ global: true, policy: withRule("corp_proxy") });
    expect(global.version).toBe(1);
    expect(global.settingsRevision).toBeGreaterThan(0n);
    expect(await gw.grpc.updateConfig({ global: true, policy: withRule("corp_proxy") })).toMatchObject({
      version: 1,
      policyHash: global.policyHash,
    });
    const config = await gw.grpc.getSandboxConfig({ sandboxId: sb.id }, asSupervisor(sb.id));
    expect(config).toMatchObject({
      policySource: sandboxv1.PolicySource.GLOBAL,
      globalPolicyVersion: 1,
      version: 1,
      policyHash: global.policyHash,
    });
    expect(config.policy?.networkPolicies.corp_proxy).toBeDefined();
    const blocked = {
      code: Code.FailedPrecondition,
      message: "policy is managed globally; delete global policy before sandbox policy update",
    };
    expect(await rpcFailure(gw.grpc.updateConfig({ name: "governed", policy: withRule("mine") }))).toEqual(
      blocked,
    );
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({
          name: "governed",
          mergeOperations: [{ operation: { case: "removeRule", value: { ruleName: "x" } } }],
        }),
      ),
    ).toEqual(blocked);
    expect(await gw.grpc.getSandboxPolicyStatus({ global: true })).toMatchObject({
      activeVersion: 0,
      revision: { version: 1, status: PolicyStatus.LOADED },
    });
    const v2 = await gw.grpc.updateConfig({ global: true, policy: withRule("corp_proxy_2") });
    expect(v2.version).toBe(2);
    expect(await history("", true)).toEqual([
      [2, "LOADED"],
      [1, "SUPERSEDED"],
    ]);
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({ global: true, settingKey: "policy", settingValue: boolSetting(true) }),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "reserved key 'policy' must be set via the policy field",
    });

    const deleted = await gw.grpc.updateConfig({ global: true, settingKey: "policy", deleteSetting: true });
    expect(deleted.deleted).toBe(true);
    expect(await history("", true)).toEqual([
      [2, "SUPERSEDED"],
      [1, "SUPERSEDED"],
    ]);
    expect((await gw.grpc.getSandboxConfig({ sandboxId: sb.id })).policySource).toBe(
      sandboxv1.PolicySource.SANDBOX,
    );
    expect((await gw.grpc.updateConfig({ name: "governed", policy: withRule("mine") })).version).toBe(2);
  });

  it("keeps settings per scope: registered keys only, global wins and blocks sandbox changes", async () => {
    const sb = await sandbox("configured");
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({ global: true, settingKey: "nope", settingValue: boolSetting(true) }),
      ),
    ).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^unknown setting key 'nope'\. Allowed keys: .*ocsf_json_enabled/),
    });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({ name: "configured", settingKey: "policy", settingValue: boolSetting(true) }),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "reserved key 'policy' must be set via policy commands",
    });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({
          name: "configured",
          settingKey: "ocsf_json_enabled",
          settingValue: { value: { case: "stringValue", value: "yes" } },
        }),
      ),
    ).toEqual({ code: Code.InvalidArgument, message: "setting 'ocsf_json_enabled' expects bool value" });
    expect(
      await rpcFailure(gw.grpc.updateConfig({ name: "configured", settingKey: "ocsf_json_enabled" })),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "setting_value is required",
    });

    const set = await gw.grpc.updateConfig({
      name: "configured",
      settingKey: "ocsf_json_enabled",
      settingValue: boolSetting(true),
    });
    expect(set).toMatchObject({ settingsRevision: 1n, deleted: false });
    expect(
      (
        await gw.grpc.updateConfig({
          name: "configured",
          settingKey: "ocsf_json_enabled",
          settingValue: boolSetting(true),
        })
      ).settingsRevision,
    ).toBe(1n);
    const sandboxScoped = await gw.grpc.getSandboxConfig({ sandboxId: sb.id });
    expect(sandboxScoped.settings.ocsf_json_enabled).toMatchObject({
      scope: sandboxv1.SettingScope.SANDBOX,
      value: { value: { case: "boolValue", value: true } },
    });

    const globalSet = await gw.grpc.updateConfig({
      global: true,
      settingKey: "ocsf_json_enabled",
      settingValue: boolSetting(false),
    });
    const globalScoped = await gw.grpc.getSandboxConfig({ sandboxId: sb.id });
    expect(globalScoped.settings.ocsf_json_enabled).toMatchObject({
      scope: sandboxv1.SettingScope.GLOBAL,
      value: { value: { case: "boolValue", value: false } },
    });
    expect(globalScoped.configRevision).not.toBe(sandboxScoped.configRevision);
    expect(await gw.grpc.getGatewayConfig({})).toMatchObject({
      settingsRevision: globalSet.settingsRevision,
      settings: { ocsf_json_enabled: { value: { case: "boolValue", value: false } } },
    });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({
          name: "configured",
          settingKey: "ocsf_json_enabled",
          settingValue: boolSetting(true),
        }),
      ),
    ).toEqual({
      code: Code.FailedPrecondition,
      message:
        "setting 'ocsf_json_enabled' is managed globally; delete the global setting before sandbox update",
    });
    expect(
      await rpcFailure(
        gw.grpc.updateConfig({ name: "configured", settingKey: "ocsf_json_enabled", deleteSetting: true }),
      ),
    ).toEqual({
      code: Code.FailedPrecondition,
      message: "setting 'ocsf_json_enabled' is managed globally; delete the global setting first",
    });

    expect(
      (await gw.grpc.updateConfig({ global: true, settingKey: "ocsf_json_enabled", deleteSetting: true }))
        .deleted,
    ).toBe(true);
    expect(
      (await gw.grpc.updateConfig({ global: true, settingKey: "ocsf_json_enabled", deleteSetting: true }))
        .deleted,
    ).toBe(false);
    const removed = await gw.grpc.updateConfig({
      name: "configured",
      settingKey: "ocsf_json_enabled",
      deleteSetting: true,
    });
    expect(removed).toMatchObject({ deleted: true, settingsRevision: 2n });
    const unset = await gw.grpc.getSandboxConfig({ sandboxId: sb.id });
    expect(unset.settings.ocsf_json_enabled).toMatchObject({ scope: sandboxv1.SettingScope.UNSPECIFIED });
    expect(unset.settings.ocsf_json_enabled?.value).toBeUndefined();
  });
});

describe("push", () => {
  it("tells a connected supervisor about new revisions and global changes, and a reconnecting one at once", async () => {
    const sb = await sandbox("pushed", { policy: policy() });
    await gw.grpc.getSandboxConfig({ sandboxId: sb.id }); // backfills v1
    const session = openSession(sb.id);
    expect((await session.next()).payload.case).toBe("sessionAccepted");
    expect(await session.next()).toMatchObject({
      payload: { case: "configChanged", value: { policyVersion: 1 } },
    });

    await gw.grpc.updateConfig({ name: "pushed", policy: withRule("pushed_rule") });
    expect(await session.next()).toMatchObject({
      payload: { case: "configChanged", value: { policyVersion: 2 } },
    });
    await gw.grpc.updateConfig({
      name: "pushed",
      settingKey: "ocsf_json_enabled",
      settingValue: boolSetting(true),
    });
    expect(await session.next()).toMatchObject({
      payload: { case: "configChanged", value: { policyVersion: 2 } },
    });
    await gw.grpc.updateConfig({
      global: true,
      settingKey: "ocsf_json_enabled",
      settingValue: boolSetting(true),
    });
    expect(await session.next()).toMatchObject({ payload: { case: "configChanged" } });
    await gw.grpc.updateConfig({ global: true, settingKey: "ocsf_json_enabled", deleteSetting: true });
    expect(await session.next()).toMatchObject({ payload: { case: "configChanged" } });
    session.end();

    // Changes made while no session is up are announced right after the next SessionAccepted.
    await gw.grpc.updateConfig({ name: "pushed", policy: withRule("while_away") });
    const again = openSession(sb.id);
    expect((await again.next()).payload.case).toBe("sessionAccepted");
    expect(await again.next()).toMatchObject({
      payload: { case: "configChanged", value: { policyVersion: 3 } },
    });
    again.end();
  });
});

describe("persistence", () => {
  it("revisions, the loaded version, settings and the global policy survive a restart; deleting a sandbox removes its revisions", async () => {
    const sb = await sandbox("durable", { policy: policy() });
    await gw.grpc.updateConfig({ name: "durable", policy: withRule("kept") });
    await gw.grpc.reportPolicyStatus(
      { sandboxId: sb.id, version: 1, status: PolicyStatus.LOADED },
      asSupervisor(sb.id),
    );
    await gw.grpc.updateConfig({
      name: "durable",
      settingKey: "ocsf_json_enabled",
      settingValue: boolSetting(true),
    });
    const global = await gw.grpc.updateConfig({ global: true, policy: withRule("corp") });
    const before = await history("durable");

    await gw.stop("SIGTERM");
    gw = await startGateway({ stateDir, port: gw.port });

    expect(await history("durable")).toEqual(before);
    expect((await gw.grpc.getSandbox({ name: "durable" })).sandbox?.currentPolicyVersion).toBe(1);
    const config = await gw.grpc.getSandboxConfig({ sandboxId: sb.id });
    expect(config).toMatchObject({
      policySource: sandboxv1.PolicySource.GLOBAL,
      policyHash: global.policyHash,
    });
    expect(config.settings.ocsf_json_enabled?.scope).toBe(sandboxv1.SettingScope.SANDBOX);
    await gw.grpc.updateConfig({ global: true, settingKey: "policy", deleteSetting: true });

    await gw.grpc.deleteSandbox({ name: "durable" });
    await waitFor(
      async () => !(await gw.grpc.listSandboxes({})).sandboxes.some((s) => s.name === "durable"),
      10_000,
      () => "sandbox not removed",
    );
    const db = new Database(join(stateDir, "gateway.db"), { readonly: true });
    try {
      const rows = db
        .prepare("SELECT count(*) AS n FROM sandbox_policies WHERE sandbox_id = ?")
        .get(sb.id) as {
        n: number;
      };
      expect(rows.n).toBe(0);
      const settings = db
        .prepare("SELECT count(*) AS n FROM objects WHERE id = ?")
        .get(`settings:${sb.id}`) as {
        n: number;
      };
      expect(settings.n).toBe(0);
    } finally {
      db.close();
    }
  }, 60_000);
});

/** Plays the supervisor: hello, then reads what the gateway sends, one message at a time. */
function openSession(sandboxId: string) {
  let close: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => {
    close = resolve;
  });
  async function* outbound() {
    yield create(SupervisorMessageSchema, {
      payload: { case: "hello", value: { sandboxId, instanceId: "policy-test" } },
    });
    await ended;
  }
  const abort = new AbortController();
  const stream = gw.grpc.connectSupervisor(outbound(), { ...asSupervisor(sandboxId), signal: abort.signal });
  const iterator = stream[Symbol.asyncIterator]();
  return {
    async next(): Promise<GatewayMessage> {
      const next = await iterator.next();
      if (next.done) throw new Error("supervisor session ended");
      return next.value;
    },
    end() {
      close();
      abort.abort();
    },
  };
}
