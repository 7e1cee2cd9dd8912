import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { ensureSandboxProcessIdentity, restrictiveDefaultPolicy } from "./default-policy.js";

describe("restrictiveDefaultPolicy", () => {
  it("is upstream's default (§4.3): system paths, best effort, sandbox identity, no network", () => {
    const policy = restrictiveDefaultPolicy();
    expect(policy.version).toBe(1);
    expect(policy.filesystem).toMatchObject({
      includeWorkdir: true,
      readOnly: ["/usr", "/lib", "/proc", "/dev/urandom", "/app", "/etc", "/var/log"],
      readWrite: ["/sandbox", "/tmp", "/dev/null"],
    });
    expect(policy.landlock?.compatibility).toBe("best_effort");
    expect(policy.process).toMatchObject({ runAsUser: "sandbox", runAsGroup: "sandbox" });
    expect(policy.networkPolicies).toEqual({});
  });

  it("returns a fresh copy each time", () => {
    restrictiveDefaultPolicy().filesystem?.readOnly.push("/x");
    expect(restrictiveDefaultPolicy().filesystem?.readOnly).not.toContain("/x");
  });
});

describe("ensureSandboxProcessIdentity", () => {
  it("fills a missing section or empty fields, keeping explicit values", () => {
    const missing = create(sandboxv1.SandboxPolicySchema, { version: 1 });
    ensureSandboxProcessIdentity(missing);
    expect(missing.process).toMatchObject({ runAsUser: "sandbox", runAsGroup: "sandbox" });
    const partial = create(sandboxv1.SandboxPolicySchema, { process: { runAsUser: "root" } });
    ensureSandboxProcessIdentity(partial);
    expect(partial.process).toMatchObject({ runAsUser: "root", runAsGroup: "sandbox" });
  });
});
