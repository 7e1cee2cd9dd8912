import { clone, create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { restrictiveDefaultPolicy } from "./default-policy.js";
import { checkStaticFieldsUnchanged } from "./static-fields.js";

function refusal(edit: (policy: sandboxv1.SandboxPolicy) => void): string {
  const baseline = restrictiveDefaultPolicy();
  const next = clone(sandboxv1.SandboxPolicySchema, baseline);
  edit(next);
  try {
    checkStaticFieldsUnchanged(baseline, next);
  } catch (error) {
    expect(error).toBeInstanceOf(OpenShellError);
    expect((error as OpenShellError).code).toBe("invalid_argument");
    return (error as OpenShellError).message;
  }
  return "accepted";
}

describe("checkStaticFieldsUnchanged", () => {
  it("accepts network changes and added filesystem paths", () => {
    expect(
      refusal((p) => {
        p.filesystem?.readOnly.push("/opt");
        p.filesystem?.readWrite.push("/work");
        p.networkPolicies.a = create(sandboxv1.NetworkPolicyRuleSchema, { name: "a" });
        p.version = 9;
      }),
    ).toBe("accepted");
  });

  it("refuses removing or narrowing the filesystem section", () => {
    expect(
      refusal((p) => {
        p.filesystem = undefined;
      }),
    ).toBe("filesystem policy cannot be removed on a live sandbox");
    expect(
      refusal((p) => {
        if (p.filesystem) p.filesystem.includeWorkdir = false;
      }),
    ).toBe("filesystem include_workdir cannot be changed on a live sandbox");
    expect(
      refusal((p) => {
        if (p.filesystem) p.filesystem.readOnly = p.filesystem.readOnly.filter((path) => path !== "/etc");
      }),
    ).toBe("filesystem read_only path '/etc' cannot be removed on a live sandbox");
    expect(
      refusal((p) => {
        if (p.filesystem) p.filesystem.readWrite = ["/sandbox"];
      }),
    ).toBe("filesystem read_write path '/tmp' cannot be removed on a live sandbox");
  });

  it("refuses any landlock or process change", () => {
    expect(
      refusal((p) => {
        if (p.landlock) p.landlock.compatibility = "hard_requirement";
      }),
    ).toBe("landlock policy cannot be changed on a live sandbox (applied at startup)");
    expect(
      refusal((p) => {
        p.landlock = undefined;
      }),
    ).toBe("landlock policy cannot be changed on a live sandbox (applied at startup)");
    expect(
      refusal((p) => {
        if (p.process) p.process.runAsUser = "root";
      }),
    ).toBe("process policy cannot be changed on a live sandbox (applied at startup)");
  });

  it("lets a baseline without a filesystem section gain one", () => {
    const baseline = create(sandboxv1.SandboxPolicySchema, { version: 1 });
    expect(() => checkStaticFieldsUnchanged(baseline, restrictiveDefaultPolicy())).toThrow(/landlock/);
    const next = create(sandboxv1.SandboxPolicySchema, { version: 1, filesystem: { readOnly: ["/usr"] } });
    expect(() => checkStaticFieldsUnchanged(baseline, next)).not.toThrow();
  });
});
