import { create, equals } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { type PolicyMergeOperation, PolicyMergeOperationSchema, sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { restrictiveDefaultPolicy } from "./default-policy.js";
import { applyMergeOperations, mergePolicy } from "./merge-operations.js";

type OperationInit = NonNullable<
  Parameters<typeof create<typeof PolicyMergeOperationSchema>>[1]
>["operation"];

function op(operation: OperationInit): PolicyMergeOperation {
  return create(PolicyMergeOperationSchema, { operation });
}

function endpoint(host: string, port: number, extra: Record<string, unknown> = {}) {
  return { host, port, ports: [port], ...extra };
}

function basePolicy(): sandboxv1.SandboxPolicy {
  const policy = restrictiveDefaultPolicy();
  policy.networkPolicies.github = create(sandboxv1.NetworkPolicyRuleSchema, {
    name: "github",
    endpoints: [endpoint("api.github.com", 443, { protocol: "rest", access: "read-only" })],
    binaries: [{ path: "/usr/bin/gh" }],
  });
  policy.networkPolicies.multi = create(sandboxv1.NetworkPolicyRuleSchema, {
    name: "multi",
    endpoints: [{ host: "api.example.com", port: 80, ports: [80, 443] }],
    binaries: [{ path: "/usr/bin/curl" }, { path: "/usr/bin/wget" }],
  });
  return policy;
}

function failure(policy: sandboxv1.SandboxPolicy, operations: PolicyMergeOperation[]): OpenShellError {
  try {
    mergePolicy(policy, operations);
  } catch (error) {
    if (error instanceof OpenShellError) return error;
    throw error;
  }
  throw new Error("expected the merge to fail");
}

describe("mergePolicy", () => {
  it("does not modify its input and reports whether anything changed", () => {
    const policy = basePolicy();
    const before = create(sandboxv1.SandboxPolicySchema, policy);
    const result = mergePolicy(policy, [op({ case: "removeRule", value: { ruleName: "github" } })]);
    expect(equals(sandboxv1.SandboxPolicySchema, policy, before)).toBe(true);
    expect(result.changed).toBe(true);
    expect(result.policy.networkPolicies.github).toBeUndefined();
    expect(mergePolicy(policy, [op({ case: "removeRule", value: { ruleName: "absent" } })]).changed).toBe(
      false,
    );
  });

  it("add_rule inserts a new rule under the requested name (named after it when unnamed)", () => {
    const merged = applyMergeOperations(basePolicy(), [
      op({
        case: "addRule",
        value: {
          ruleName: "allow_pypi_org_443",
          rule: {
            endpoints: [endpoint("pypi.org", 443)],
            binaries: [{ path: "/usr/bin/pip" }, { path: "/usr/bin/pip" }],
          },
        },
      }),
    ]);
    expect(merged.networkPolicies.allow_pypi_org_443).toMatchObject({
      name: "allow_pypi_org_443",
      endpoints: [{ host: "pypi.org", port: 443, ports: [443] }],
      binaries: [{ path: "/usr/bin/pip" }],
    });
  });

  it("add_rule merges endpoints and binaries into the rule of that name", () => {
    const merged = applyMergeOperations(basePolicy(), [
      op({
        case: "addRule",
        value: {
          ruleName: "multi",
          rule: {
            endpoints: [
              endpoint("api.example.com", 8443, { allowedIps: ["10.0.0.1"] }),
              endpoint("other.example.com", 22),
            ],
            binaries: [{ path: "/usr/bin/curl" }, { path: "/usr/bin/ssh" }],
          },
        },
      }),
    ]);
    const rule = merged.networkPolicies.multi;
    expect(rule?.binaries.map((b) => b.path)).toEqual(["/usr/bin/curl", "/usr/bin/wget", "/usr/bin/ssh"]);
    expect(rule?.endpoints.map((e) => `${e.host}:${e.ports.join(",")}`)).toEqual([
      "api.example.com:80,443",
      "api.example.com:8443",
      "other.example.com:22",
    ]);
  });

  it("add_rule folds into an existing rule sharing an endpoint, keeping its L7 settings with warnings", () => {
    const result = mergePolicy(basePolicy(), [
      op({
        case: "addRule",
        value: {
          ruleName: "allow_api_github_com_443",
          rule: {
            endpoints: [
              endpoint("API.github.com", 443, {
                protocol: "sql",
                enforcement: "enforce",
                rules: [{ allow: { method: "POST", path: "/repos/*/issues" } }],
              }),
            ],
            binaries: [{ path: "/usr/bin/curl" }],
          },
        },
      }),
    ]);
    expect(result.policy.networkPolicies.allow_api_github_com_443).toBeUndefined();
    const github = result.policy.networkPolicies.github;
    const merged = github?.endpoints[0];
    expect(merged?.protocol).toBe("rest");
    expect(merged?.enforcement).toBe("enforce");
    expect(merged?.access).toBe("");
    expect(merged?.rules.map((r) => `${r.allow?.method} ${r.allow?.path}`)).toEqual([
      "GET **",
      "HEAD **",
      "OPTIONS **",
      "POST /repos/*/issues",
    ]);
    expect(github?.binaries.map((b) => b.path)).toEqual(["/usr/bin/gh", "/usr/bin/curl"]);
    expect(result.warnings).toEqual([
      "endpoint api.github.com:443 keeps existing protocol 'rest' and ignores incoming 'sql'",
      "expanded access preset 'read-only' to explicit rules for endpoint api.github.com:443",
    ]);
  });

  it("remove_endpoint drops only the requested port and drops a rule left without endpoints", () => {
    const merged = applyMergeOperations(basePolicy(), [
      op({ case: "removeEndpoint", value: { host: "api.example.com", port: 443 } }),
      op({ case: "removeEndpoint", value: { ruleName: "github", host: "api.github.com", port: 443 } }),
    ]);
    expect(merged.networkPolicies.multi?.endpoints[0]).toMatchObject({ port: 80, ports: [80] });
    expect(merged.networkPolicies.github).toBeUndefined();
    const untouched = applyMergeOperations(basePolicy(), [
      op({ case: "removeEndpoint", value: { ruleName: "multi", host: "api.github.com", port: 443 } }),
    ]);
    expect(untouched.networkPolicies.github).toBeDefined();
  });

  it("add_deny_rules and add_allow_rules append to the endpoint matching host:port", () => {
    const deny = { method: "DELETE", path: "/repos/**" };
    const result = mergePolicy(basePolicy(), [
      op({ case: "addDenyRules", value: { host: "api.github.com", port: 443, denyRules: [deny, deny] } }),
      op({
        case: "addAllowRules",
        value: {
          host: "api.github.com",
          port: 443,
          rules: [{ allow: { method: "POST", path: "/graphql" } }],
        },
      }),
    ]);
    const github = result.policy.networkPolicies.github?.endpoints[0];
    expect(github?.denyRules).toHaveLength(1);
    expect(github?.rules).toHaveLength(4);
    expect(github?.access).toBe("");
  });

  it("add_deny_rules / add_allow_rules refuse an endpoint that is missing, L4-only or not rest", () => {
    const policy = basePolicy();
    policy.networkPolicies.db = create(sandboxv1.NetworkPolicyRuleSchema, {
      name: "db",
      endpoints: [endpoint("db.example.com", 5432, { protocol: "sql", access: "full" })],
    });
    const deny = { method: "POST", path: "/admin" };
    const missing = failure(policy, [
      op({ case: "addDenyRules", value: { host: "nope.example.com", port: 443, denyRules: [deny] } }),
    ]);
    expect(missing.code).toBe("failed_precondition");
    expect(missing.message).toBe(
      "merge_operations[0]: endpoint nope.example.com:443 was not found in the current policy",
    );
    expect(
      failure(policy, [
        op({ case: "removeRule", value: { ruleName: "x" } }),
        op({ case: "addAllowRules", value: { host: "api.example.com", port: 80, rules: [{ allow: deny }] } }),
      ]).message,
    ).toBe(
      "merge_operations[1]: endpoint api.example.com:80 has no L7 inspection configured (protocol is empty)",
    );
    expect(
      failure(policy, [
        op({ case: "addDenyRules", value: { host: "db.example.com", port: 5432, denyRules: [deny] } }),
      ]).message,
    ).toBe(
      "merge_operations[0]: endpoint db.example.com:5432 uses unsupported protocol 'sql'; this operation currently supports only protocol 'rest'",
    );
    policy.networkPolicies.bare = create(sandboxv1.NetworkPolicyRuleSchema, {
      name: "bare",
      endpoints: [endpoint("bare.example.com", 443, { protocol: "rest" })],
    });
    expect(
      failure(policy, [
        op({ case: "addDenyRules", value: { host: "bare.example.com", port: 443, denyRules: [deny] } }),
      ]).message,
    ).toBe(
      "merge_operations[0]: endpoint bare.example.com:443 has no base allow set; configure access or explicit allow rules before adding deny rules",
    );
  });

  it("remove_binary drops a binary and the rule when it was the last", () => {
    const merged = applyMergeOperations(basePolicy(), [
      op({ case: "removeBinary", value: { ruleName: "multi", binaryPath: "/usr/bin/wget" } }),
      op({ case: "removeBinary", value: { ruleName: "github", binaryPath: "/usr/bin/gh" } }),
    ]);
    expect(merged.networkPolicies.multi?.binaries.map((b) => b.path)).toEqual(["/usr/bin/curl"]);
    expect(merged.networkPolicies.github).toBeUndefined();
  });

  it("refuses malformed operations with invalid_argument naming the index", () => {
    const cases: Array<[OperationInit, string]> = [
      [{ case: undefined }, "merge_operations[0] is missing an operation"],
      [
        { case: "addRule", value: { ruleName: " ", rule: { endpoints: [endpoint("a", 1)] } } },
        "merge_operations[0].add_rule.rule_name is required",
      ],
      [
        { case: "addRule", value: { ruleName: "r", rule: {} } },
        "merge_operations[0].add_rule.rule must contain at least one endpoint",
      ],
      [
        { case: "removeEndpoint", value: { host: "a", port: 0 } },
        "merge_operations[0].remove_endpoint requires host and non-zero port",
      ],
      [
        { case: "removeRule", value: { ruleName: "" } },
        "merge_operations[0].remove_rule.rule_name is required",
      ],
      [
        { case: "addDenyRules", value: { host: "a", port: 1, denyRules: [] } },
        "merge_operations[0].add_deny_rules requires host, non-zero port, and at least one deny rule",
      ],
      [
        { case: "addAllowRules", value: { host: "", port: 1, rules: [{}] } },
        "merge_operations[0].add_allow_rules requires host, non-zero port, and at least one allow rule",
      ],
      [
        { case: "addAllowRules", value: { host: "a", port: 1, rules: [{}] } },
        "merge_operations[0].add_allow_rules rules must include allow payloads",
      ],
      [
        { case: "removeBinary", value: { ruleName: "r", binaryPath: "" } },
        "merge_operations[0].remove_binary requires rule_name and binary_path",
      ],
    ];
    for (const [operation, message] of cases) {
      const error = failure(basePolicy(), [op(operation)]);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toBe(message);
    }
    // Checked before anything applies: a bad second operation fails the whole request.
    expect(
      failure(basePolicy(), [
        op({ case: "removeRule", value: { ruleName: "github" } }),
        op({ case: undefined }),
      ]).message,
    ).toBe("merge_operations[1] is missing an operation");
  });
});
