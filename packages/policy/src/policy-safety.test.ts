import { create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { restrictiveDefaultPolicy } from "./default-policy.js";
import { assertSafePolicy, findUnsafePolicyContent, validateSandboxPolicy } from "./policy-safety.js";

function policy(
  init: Parameters<typeof create<typeof sandboxv1.SandboxPolicySchema>>[1],
): sandboxv1.SandboxPolicy {
  return create(sandboxv1.SandboxPolicySchema, { version: 1, ...init });
}

describe("validateSandboxPolicy", () => {
  it("accepts the restrictive default", () => {
    expect(validateSandboxPolicy(restrictiveDefaultPolicy())).toEqual([]);
  });

  it("requires the sandbox identity when a process section is present", () => {
    expect(validateSandboxPolicy(policy({ process: { runAsUser: "root", runAsGroup: "root" } }))).toEqual([
      "run_as_user must be 'sandbox', got 'root'",
      "run_as_group must be 'sandbox', got 'root'",
    ]);
    expect(validateSandboxPolicy(policy({ process: { runAsUser: "", runAsGroup: "sandbox" } }))).toEqual([
      "run_as_user must be 'sandbox', got ''",
    ]);
    expect(validateSandboxPolicy(policy({}))).toEqual([]);
  });

  it("refuses relative paths, `..` components and a read-write `/`", () => {
    expect(
      validateSandboxPolicy(
        policy({
          filesystem: { readOnly: ["usr/lib", "/usr/../etc/shadow", "/a/..b"], readWrite: ["/", "///"] },
        }),
      ),
    ).toEqual([
      "path must be absolute (start with '/'): usr/lib",
      "path contains '..' traversal component: /usr/../etc/shadow",
      "read-write path is overly broad: /",
      "read-write path is overly broad: ///",
    ]);
    expect(validateSandboxPolicy(policy({ filesystem: { readOnly: ["/"] } }))).toEqual([]);
  });

  it("limits the number and length of paths", () => {
    const many = Array.from({ length: 257 }, (_, i) => `/p${i}`);
    expect(validateSandboxPolicy(policy({ filesystem: { readOnly: many } }))).toEqual([
      "too many filesystem paths (257 > 256)",
    ]);
    const long = `/${"a".repeat(4096)}`;
    expect(validateSandboxPolicy(policy({ filesystem: { readWrite: [long] } }))).toEqual([
      `path exceeds maximum length (4097 > 4096): /${"a".repeat(76)}...`,
    ]);
  });

  it("refuses TLD wildcards, naming the rule (its name, else its key)", () => {
    const violations = validateSandboxPolicy(
      policy({
        networkPolicies: {
          wide: { name: "", endpoints: [{ host: "*.com" }, { host: "**.io" }, { host: "*.example.com" }] },
          named: { name: "cdn", endpoints: [{ host: "*.net" }] },
        },
      }),
    );
    expect(violations).toEqual([
      "network policy 'wide': TLD wildcard '*.com' is not allowed; use subdomain wildcards like '*.example.com' instead",
      "network policy 'wide': TLD wildcard '**.io' is not allowed; use subdomain wildcards like '*.example.com' instead",
      "network policy 'cdn': TLD wildcard '*.net' is not allowed; use subdomain wildcards like '*.example.com' instead",
    ]);
  });

  it("locates each violation by its YAML path", () => {
    const issues = findUnsafePolicyContent(
      policy({
        filesystem: { readWrite: ["/tmp", "/"] },
        process: { runAsUser: "sandbox", runAsGroup: "0" },
      }),
    );
    expect(issues.map((issue) => issue.path)).toEqual([
      ["process", "run_as_group"],
      ["filesystem_policy", "read_write", 1],
    ]);
  });
});

describe("assertSafePolicy", () => {
  it("throws invalid_argument with upstream's joined message", () => {
    const unsafe = policy({
      process: { runAsUser: "root", runAsGroup: "sandbox" },
      filesystem: { readWrite: ["/"] },
    });
    expect(() => assertSafePolicy(unsafe)).toThrow(OpenShellError);
    try {
      assertSafePolicy(unsafe);
    } catch (error) {
      expect((error as OpenShellError).code).toBe("invalid_argument");
      expect((error as OpenShellError).message).toBe(
        "policy contains unsafe content: run_as_user must be 'sandbox', got 'root'; read-write path is overly broad: /",
      );
    }
    expect(() => assertSafePolicy(restrictiveDefaultPolicy())).not.toThrow();
  });
});
