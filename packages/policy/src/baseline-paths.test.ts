import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { enrichBaselinePaths } from "./baseline-paths.js";
import { restrictiveDefaultPolicy } from "./default-policy.js";

describe("enrichBaselinePaths", () => {
  it("does nothing without network policies", () => {
    const policy = create(sandboxv1.SandboxPolicySchema, { version: 1 });
    expect(enrichBaselinePaths(policy)).toBe(false);
    expect(policy.filesystem).toBeUndefined();
  });

  it("adds the missing baseline paths, creating the section with include_workdir", () => {
    const policy = create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      networkPolicies: { a: { name: "a" } },
    });
    expect(enrichBaselinePaths(policy)).toBe(true);
    expect(policy.filesystem).toMatchObject({
      includeWorkdir: true,
      readOnly: ["/usr", "/lib", "/etc", "/app", "/var/log", "/proc", "/dev/urandom"],
      readWrite: ["/sandbox", "/tmp"],
    });
    expect(enrichBaselinePaths(policy)).toBe(false);
  });

  it("keeps user paths, skips read-only paths already writable or absent from the image", () => {
    const policy = create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      filesystem: { includeWorkdir: false, readOnly: ["/opt"], readWrite: ["/app", "/tmp"] },
      networkPolicies: { a: { name: "a" } },
    });
    expect(enrichBaselinePaths(policy, { pathExists: (path) => path !== "/var/log" })).toBe(true);
    expect(policy.filesystem).toMatchObject({
      includeWorkdir: false,
      readOnly: ["/opt", "/usr", "/lib", "/etc", "/proc", "/dev/urandom"],
      readWrite: ["/app", "/tmp", "/sandbox"],
    });
  });

  it("leaves the restrictive default, which has every baseline path, unchanged", () => {
    const policy = restrictiveDefaultPolicy();
    policy.networkPolicies.a = create(sandboxv1.NetworkPolicyRuleSchema, { name: "a" });
    expect(enrichBaselinePaths(policy)).toBe(false);
  });
});
