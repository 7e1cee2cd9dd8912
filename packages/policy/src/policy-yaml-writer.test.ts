import { create, equals } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { restrictiveDefaultPolicy } from "./default-policy.js";
import { EVERY_FIELD_POLICY_YAML, EXAMPLE_POLICY_YAML } from "./example-policy.fixture.js";
import { parsePolicyYaml } from "./policy-yaml-parser.js";
import { policyToYaml } from "./policy-yaml-writer.js";

function proto(text: string): sandboxv1.SandboxPolicy {
  return parsePolicyYaml(text);
}

describe("policyToYaml", () => {
  for (const [name, text] of [
    ["the §4.4 example", EXAMPLE_POLICY_YAML],
    ["a policy with every field", EVERY_FIELD_POLICY_YAML],
  ] as const) {
    it(`round-trips ${name}: YAML → proto → YAML → proto is the same policy and the YAML is stable`, () => {
      const first = proto(text);
      const yaml = policyToYaml(first);
      const second = proto(yaml);
      expect(equals(sandboxv1.SandboxPolicySchema, first, second)).toBe(true);
      expect(policyToYaml(second)).toBe(yaml);
    });
  }

  it("writes upstream's key names and shapes", () => {
    const doc = parse(policyToYaml(proto(EVERY_FIELD_POLICY_YAML)));
    expect(Object.keys(doc)).toEqual([
      "version",
      "filesystem_policy",
      "landlock",
      "process",
      "network_policies",
    ]);
    expect(doc.filesystem_policy.include_workdir).toBe(false);
    expect(Object.keys(doc.network_policies)).toEqual(["alpha", "zeta"]);
    expect(doc.network_policies.alpha.name).toBe("alpha");
    const [api, db] = doc.network_policies.zeta.endpoints;
    expect(api.port).toBe(8443);
    expect(api.ports).toBeUndefined();
    expect(db.ports).toEqual([5432, 5433]);
    expect(db.port).toBeUndefined();
    expect(api.rules[0].allow.query).toEqual({ slug: "x-*", tag: { any: ["a-*", "b-*"] } });
    expect(Object.keys(api.rules[0].allow.query)).toEqual(["slug", "tag"]);
    expect(api.rules[0].allow.command).toBeUndefined();
    expect(api.deny_rules[0].query).toEqual({ force: "true" });
    expect(api.allow_encoded_slash).toBe(true);
    expect(doc.network_policies.zeta.binaries).toEqual([{ path: "/usr/bin/psql" }]);
  });

  it("leaves process out when both fields are empty, and empty sections out", () => {
    const policy = create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      process: { runAsUser: "", runAsGroup: "" },
      landlock: {},
    });
    expect(policyToYaml(policy)).toBe("version: 1\nlandlock: {}\n");
    expect(proto("version: 1\nlandlock: {}\n").landlock?.compatibility).toBe("");
  });

  it("writes the restrictive default with the filesystem_policy key", () => {
    const yaml = policyToYaml(restrictiveDefaultPolicy());
    expect(yaml).toContain("filesystem_policy:\n");
    expect(yaml).not.toMatch(/^filesystem:/m);
    expect(equals(sandboxv1.SandboxPolicySchema, proto(yaml), restrictiveDefaultPolicy())).toBe(true);
  });

  it("writes a proto port without ports as `port`", () => {
    const policy = create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      networkPolicies: { a: { name: "a", endpoints: [{ host: "a.example.com", port: 80 }] } },
    });
    expect(parse(policyToYaml(policy)).network_policies.a.endpoints).toEqual([
      { host: "a.example.com", port: 80 },
    ]);
  });
});
