import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLogger } from "@openshell/core";
import { deterministicPolicyHash, restrictiveDefaultPolicy } from "@openshell/policy";
import { PolicyStatus, sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { ConfigSync, type ConfigSyncClient } from "./config-sync.js";
import type { DiscoveredPolicy } from "./policy-discovery.js";
import { PolicyState } from "./policy-state.js";

const logger = createLogger({ name: "config-sync-test", level: "silent" });

const policyWithRule = (host: string) =>
  create(sandboxv1.SandboxPolicySchema, {
    version: 1,
    filesystem: { includeWorkdir: true, readOnly: ["/usr"], readWrite: ["/sandbox", "/tmp"] },
    process: { runAsUser: "sandbox", runAsGroup: "sandbox" },
    networkPolicies: {
      api: { name: "api", endpoints: [{ host, port: 443 }], binaries: [{ path: "/usr/bin/curl" }] },
    },
  });
/** Refused by the supervisor's L7 checks (a protocol without rules or access). */
const l7Invalid = () => {
  const policy = policyWithRule("api.example.com");
  policy.networkPolicies.api!.endpoints[0]!.protocol = "rest";
  return policy;
};

interface Report {
  version: number;
  status: PolicyStatus;
  loadError: string;
}

/** The gateway's side of the three calls, in memory: revisions, settings, config_revision. */
class FakeGateway {
  revisions: sandboxv1.SandboxPolicy[] = [];
  source = sandboxv1.PolicySource.SANDBOX;
  settings: Record<string, sandboxv1.EffectiveSetting> = {};
  configRevision = 1n;
  reports: Report[] = [];
  updates: Array<{ name: string; policy: sandboxv1.SandboxPolicy }> = [];
  fetches = 0;
  /** While set, GetSandboxConfig waits for it. */
  gate: Promise<void> | undefined;
  failUpdates = false;
  failReports = 0;

  setPolicy(policy: sandboxv1.SandboxPolicy): void {
    this.revisions.push(policy);
    this.configRevision++;
  }

  readonly client = {
    getSandboxConfig: async () => {
      this.fetches++;
      await this.gate;
      const policy = this.revisions.at(-1);
      return create(sandboxv1.GetSandboxConfigResponseSchema, {
        policy,
        version: this.revisions.length,
        policyHash: policy ? deterministicPolicyHash(policy) : "",
        settings: this.settings,
        configRevision: this.configRevision,
        policySource: policy ? this.source : sandboxv1.PolicySource.UNSPECIFIED,
      });
    },
    reportPolicyStatus: async (request: Report) => {
      if (this.failReports > 0) {
        this.failReports--;
        throw new ConnectError("gateway restarting", Code.Unavailable);
      }
      this.reports.push({ version: request.version, status: request.status, loadError: request.loadError });
      return {};
    },
    updateConfig: async (request: { name: string; policy: sandboxv1.SandboxPolicy }) => {
      if (this.failUpdates) throw new ConnectError("not allowed", Code.PermissionDenied);
      this.updates.push(request);
      this.setPolicy(request.policy);
      return {};
    },
  } as unknown as ConfigSyncClient;
}

function setup(options: { discover?: () => Promise<DiscoveredPolicy>; pollIntervalMs?: number } = {}) {
  const gateway = new FakeGateway();
  const state = new PolicyState();
  const discover =
    options.discover ?? (async () => ({ policy: restrictiveDefaultPolicy(), origin: "default" }) as const);
  const sync = new ConfigSync({
    sandboxId: "sb-1",
    sandboxName: "box",
    supervisorToken: "token",
    state,
    logger,
    pollIntervalMs: options.pollIntervalMs ?? 3_600_000,
    discoveryRoot: "/nonexistent",
    discover,
  });
  sync.setClient(gateway.client);
  return { gateway, state, sync };
}

describe("ConfigSync", () => {
  it("installs the sandbox's revision, reports LOADED once and skips an unchanged config_revision", async () => {
    const { gateway, state, sync } = setup();
    gateway.setPolicy(policyWithRule("api.example.com"));
    await sync.request("session");
    expect(state.policy).toMatchObject({
      version: 1,
      origin: "gateway",
      source: sandboxv1.PolicySource.SANDBOX,
    });
    expect(state.policy?.hash).toBe(deterministicPolicyHash(policyWithRule("api.example.com")));
    await sync.request("poll");
    expect(gateway.reports).toEqual([{ version: 1, status: PolicyStatus.LOADED, loadError: "" }]);

    gateway.setPolicy(policyWithRule("api.example.org"));
    await sync.request("pushed");
    expect(state.policy?.version).toBe(2);
    expect(state.policy?.policy.networkPolicies.api?.endpoints[0]?.host).toBe("api.example.org");
    expect(gateway.reports.at(-1)).toEqual({ version: 2, status: PolicyStatus.LOADED, loadError: "" });
  });

  it("refuses an invalid revision: FAILED with the error, the last-known-good stays installed", async () => {
    const { gateway, state, sync } = setup();
    gateway.setPolicy(policyWithRule("api.example.com"));
    await sync.request("session");
    gateway.setPolicy(l7Invalid());
    await sync.request("pushed");
    expect(state.policy?.version).toBe(1);
    expect(gateway.reports.at(-1)).toMatchObject({ version: 2, status: PolicyStatus.FAILED });
    expect(gateway.reports.at(-1)?.loadError).toBe(
      "api.endpoints[0]: protocol requires rules or access to define allowed traffic",
    );
    // A settings change later does not refuse (and report) the same revision again.
    gateway.settings = {
      ocsf_json_enabled: create(sandboxv1.EffectiveSettingSchema, {
        value: { value: { case: "boolValue", value: true } },
        scope: sandboxv1.SettingScope.SANDBOX,
      }),
    };
    gateway.configRevision++;
    await sync.request("pushed");
    expect(state.ocsfJsonEnabled).toBe(true);
    expect(gateway.reports).toHaveLength(2);
    expect(state.policy?.version).toBe(1);
  });

  it("compiles the network part on install; a revision that does not compile is FAILED and the last good stays", async () => {
    const { gateway, state, sync } = setup();
    gateway.setPolicy(policyWithRule("api.example.com"));
    await sync.request("session");
    const curl = { path: "/usr/bin/curl", ancestors: [], cmdlinePaths: [] };
    expect(
      state.policy?.network?.evaluateConnect({ host: "api.example.com", port: 443, binary: curl }),
    ).toMatchObject({
      allowed: true,
      policyName: "api",
    });
    const uncompilable = policyWithRule("api.example.org");
    uncompilable.networkPolicies.api!.endpoints[0]!.allowedIps = ["nonsense"];
    gateway.setPolicy(uncompilable);
    await sync.request("pushed");
    expect(state.policy?.version).toBe(1);
    expect(gateway.reports.at(-1)).toMatchObject({ version: 2, status: PolicyStatus.FAILED });
    expect(gateway.reports.at(-1)?.loadError).toMatch(
      /^network policy does not compile: .*allowed_ips: nonsense/,
    );
    expect(
      state.policy?.network?.evaluateConnect({ host: "api.example.com", port: 443, binary: curl }).allowed,
    ).toBe(true);
  });

  it("does not report a global policy (no sandbox revision) but installs it", async () => {
    const { gateway, state, sync } = setup();
    gateway.source = sandboxv1.PolicySource.GLOBAL;
    gateway.setPolicy(policyWithRule("global.example.com"));
    await sync.request("session");
    expect(state.policy?.source).toBe(sandboxv1.PolicySource.GLOBAL);
    expect(gateway.reports).toEqual([]);
  });

  it("coalesces requests that arrive during a fetch into exactly one more fetch", async () => {
    const { gateway, sync } = setup();
    gateway.setPolicy(policyWithRule("api.example.com"));
    let open!: () => void;
    gateway.gate = new Promise((resolve) => {
      open = resolve;
    });
    const first = sync.request("session");
    const burst = Array.from({ length: 10 }, () => sync.request("pushed"));
    await new Promise((resolve) => setImmediate(resolve));
    expect(gateway.fetches).toBe(1);
    gateway.gate = undefined;
    open();
    await Promise.all([first, ...burst]);
    expect(gateway.fetches).toBe(2);
    expect(sync.fetches).toBe(2);
    await sync.request("poll");
    expect(gateway.fetches).toBe(3);
  });

  it("with no policy on the gateway: installs the local one at once, stores it and reports the revision", async () => {
    const { gateway, state, sync } = setup();
    await sync.request("session");
    expect(gateway.updates).toHaveLength(1);
    expect(gateway.updates[0]?.name).toBe("box");
    expect(gateway.updates[0]?.policy).toEqual(restrictiveDefaultPolicy());
    expect(state.policy).toMatchObject({ version: 1, origin: "gateway" });
    expect(gateway.reports).toEqual([{ version: 1, status: PolicyStatus.LOADED, loadError: "" }]);
  });

  it("a failed sync-back keeps the local policy installed and is retried on the next sync", async () => {
    let discoveries = 0;
    const { gateway, state, sync } = setup({
      discover: async () => {
        discoveries++;
        return { policy: restrictiveDefaultPolicy(), origin: "default" };
      },
    });
    gateway.failUpdates = true;
    await sync.request("session");
    expect(state.policy).toMatchObject({ version: 0, origin: "default" });
    expect(gateway.reports).toEqual([]);
    gateway.failUpdates = false;
    await sync.request("poll");
    expect(gateway.updates).toHaveLength(1);
    expect(state.policy).toMatchObject({ version: 1, origin: "gateway" });
    expect(discoveries).toBe(1);
  });

  it("a report the gateway did not take is sent again on the next sync", async () => {
    const { gateway, sync } = setup();
    gateway.setPolicy(policyWithRule("api.example.com"));
    gateway.failReports = 1;
    await sync.request("session");
    expect(gateway.reports).toEqual([]);
    await sync.request("poll");
    expect(gateway.reports).toEqual([{ version: 1, status: PolicyStatus.LOADED, loadError: "" }]);
  });

  it("at start, adds missing baseline paths to the sandbox's policy and stores the result (once)", async () => {
    const { gateway, state, sync } = setup();
    const policy = policyWithRule("api.example.com");
    policy.filesystem!.readWrite = ["/sandbox"];
    gateway.setPolicy(policy);
    await sync.request("session");
    expect(gateway.updates).toHaveLength(1);
    expect(state.policy?.version).toBe(2);
    expect(state.policy?.policy.filesystem?.readWrite).toEqual(["/sandbox", "/tmp"]);
    gateway.setPolicy(policy);
    await sync.request("pushed");
    expect(gateway.updates).toHaveLength(1);
    expect(state.policy?.version).toBe(3);
  });

  it("polls as a fallback: a revision nobody pushed is loaded on a later poll", async () => {
    const { gateway, state, sync } = setup({ pollIntervalMs: 20 });
    gateway.setPolicy(policyWithRule("api.example.com"));
    sync.start();
    const installedVersion = () => state.policy?.version;
    try {
      while (installedVersion() !== 1) await new Promise((resolve) => setTimeout(resolve, 10));
      gateway.setPolicy(policyWithRule("api.example.org"));
      while (installedVersion() !== 2) await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      await sync.stop();
    }
    expect(gateway.reports.map((report) => report.version)).toEqual([1, 2]);
  });

  it("does nothing while disconnected", async () => {
    const { gateway, sync } = setup();
    sync.setClient(undefined);
    await sync.request("poll");
    expect(gateway.fetches).toBe(0);
  });
});
