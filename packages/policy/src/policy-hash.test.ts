import { createHash } from "node:crypto";
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { restrictiveDefaultPolicy } from "./default-policy.js";
import { EXAMPLE_POLICY_YAML } from "./example-policy.fixture.js";
import { configRevision, deterministicPolicyHash } from "./policy-hash.js";
import { parsePolicyYaml } from "./policy-yaml-parser.js";

describe("deterministicPolicyHash", () => {
  it("is SHA-256 over version LE, the encoded sections and the rules in key order", () => {
    const policy = restrictiveDefaultPolicy();
    policy.networkPolicies.b = create(sandboxv1.NetworkPolicyRuleSchema, { name: "b" });
    policy.networkPolicies.a = create(sandboxv1.NetworkPolicyRuleSchema, { name: "a" });
    const expected = createHash("sha256")
      .update(Buffer.from([1, 0, 0, 0]))
      .update(toBinary(sandboxv1.FilesystemPolicySchema, policy.filesystem as sandboxv1.FilesystemPolicy))
      .update(toBinary(sandboxv1.LandlockPolicySchema, policy.landlock as sandboxv1.LandlockPolicy))
      .update(toBinary(sandboxv1.ProcessPolicySchema, policy.process as sandboxv1.ProcessPolicy))
      .update("a")
      .update(toBinary(sandboxv1.NetworkPolicyRuleSchema, policy.networkPolicies.a))
      .update("b")
      .update(toBinary(sandboxv1.NetworkPolicyRuleSchema, policy.networkPolicies.b))
      .digest("hex");
    expect(deterministicPolicyHash(policy)).toBe(expected);
    expect(deterministicPolicyHash(create(sandboxv1.SandboxPolicySchema))).toBe(
      createHash("sha256").update(Buffer.alloc(4)).digest("hex"),
    );
  });

  it("does not depend on map insertion order", () => {
    const policy = parsePolicyYaml(EXAMPLE_POLICY_YAML);
    const reordered = clone(sandboxv1.SandboxPolicySchema, policy);
    reordered.networkPolicies = Object.fromEntries(Object.entries(policy.networkPolicies).reverse());
    const query = reordered.networkPolicies.github_git?.endpoints[0]?.rules[2]?.allow;
    if (query === undefined) throw new Error("example rule missing");
    query.query = Object.fromEntries(Object.entries(query.query).reverse());
    expect(Object.keys(reordered.networkPolicies)[0]).toBe("wildcard_cdn");
    expect(deterministicPolicyHash(reordered)).toBe(deterministicPolicyHash(policy));
    expect(deterministicPolicyHash(parsePolicyYaml(EXAMPLE_POLICY_YAML))).toBe(
      deterministicPolicyHash(policy),
    );
  });

  it("changes when any field changes", () => {
    const base = parsePolicyYaml(EXAMPLE_POLICY_YAML);
    const hash = deterministicPolicyHash(base);
    const edits: Array<(p: sandboxv1.SandboxPolicy) => void> = [
      (p) => {
        p.version = 2;
      },
      (p) => p.filesystem?.readOnly.push("/opt"),
      (p) => {
        if (p.filesystem) p.filesystem.includeWorkdir = false;
      },
      (p) => {
        p.landlock = undefined;
      },
      (p) => {
        if (p.process) p.process.runAsGroup = "other";
      },
      (p) => {
        delete p.networkPolicies.wildcard_cdn;
      },
      (p) => p.networkPolicies.internal_db?.endpoints[0]?.ports.push(5434),
      (p) =>
        p.networkPolicies.claude_code?.binaries.push(
          create(sandboxv1.NetworkBinarySchema, { path: "/bin/sh" }),
        ),
      (p) => {
        const rule = p.networkPolicies.github_api;
        if (rule) {
          delete p.networkPolicies.github_api;
          p.networkPolicies.github_api_renamed = rule;
        }
      },
      (p) => {
        const allow = p.networkPolicies.github_git?.endpoints[0]?.rules[0]?.allow;
        if (allow) allow.path = "/**";
      },
    ];
    for (const edit of edits) {
      const changed = clone(sandboxv1.SandboxPolicySchema, base);
      edit(changed);
      expect(deterministicPolicyHash(changed)).not.toBe(hash);
    }
  });
});

describe("configRevision", () => {
  const bool = (value: boolean) =>
    create(sandboxv1.SettingValueSchema, { value: { case: "boolValue", value } });

  it("is the first 8 bytes of SHA-256 as u64 little-endian over source, hash and settings in key order", () => {
    const digest = createHash("sha256")
      .update(Buffer.from([1, 0, 0, 0]))
      .update("abc")
      .update("ocsf_json_enabled")
      .update(Buffer.from([2, 0, 0, 0]))
      .update(Buffer.from([1, 1]))
      .digest();
    expect(
      configRevision({
        policySource: sandboxv1.PolicySource.SANDBOX,
        policyHash: "abc",
        settings: [{ key: "ocsf_json_enabled", scope: sandboxv1.SettingScope.GLOBAL, value: bool(true) }],
      }),
    ).toBe(digest.readBigUInt64LE(0));
  });

  it("encodes every value kind with its type tag", () => {
    const int = create(sandboxv1.SettingValueSchema, { value: { case: "intValue", value: -2n } });
    const bytes = create(sandboxv1.SettingValueSchema, {
      value: { case: "bytesValue", value: new Uint8Array([9]) },
    });
    const text = create(sandboxv1.SettingValueSchema, { value: { case: "stringValue", value: "v" } });
    const intBytes = Buffer.alloc(8);
    intBytes.writeBigInt64LE(-2n);
    const digest = createHash("sha256")
      .update(Buffer.from([0, 0, 0, 0]))
      .update("a")
      .update(Buffer.from([1, 0, 0, 0, 2]))
      .update(intBytes)
      .update("b")
      .update(Buffer.from([1, 0, 0, 0, 3, 9]))
      .update("c")
      .update(Buffer.from([1, 0, 0, 0, 0]))
      .update("v")
      .update("d")
      .update(Buffer.from([1, 0, 0, 0]))
      .digest();
    const revision = configRevision({
      policySource: 0,
      policyHash: "",
      settings: [
        { key: "c", scope: 1, value: text },
        { key: "a", scope: 1, value: int },
        { key: "d", scope: 1, value: undefined },
        { key: "b", scope: 1, value: bytes },
      ],
    });
    expect(revision).toBe(digest.readBigUInt64LE(0));
  });

  it("changes when a setting, its scope, the policy hash or the source changes", () => {
    const input = {
      policySource: sandboxv1.PolicySource.SANDBOX,
      policyHash: deterministicPolicyHash(restrictiveDefaultPolicy()),
      settings: [{ key: "ocsf_json_enabled", scope: sandboxv1.SettingScope.SANDBOX, value: bool(false) }],
    };
    const base = configRevision(input);
    expect(configRevision({ ...input })).toBe(base);
    expect(
      configRevision({ ...input, settings: [{ ...input.settings[0], value: bool(true) }] } as never),
    ).not.toBe(base);
    expect(
      configRevision({
        ...input,
        settings: [{ ...input.settings[0], scope: sandboxv1.SettingScope.GLOBAL }],
      } as never),
    ).not.toBe(base);
    expect(configRevision({ ...input, settings: [] })).not.toBe(base);
    expect(configRevision({ ...input, policyHash: "other" })).not.toBe(base);
    expect(configRevision({ ...input, policySource: sandboxv1.PolicySource.GLOBAL })).not.toBe(base);
  });
});
