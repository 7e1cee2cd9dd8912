import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { withSandboxProcessIdentity } from "./process-identity.js";

describe("withSandboxProcessIdentity", () => {
  it("fills a missing or empty identity with 'sandbox' and keeps a given one (for validation to judge)", () => {
    const none = create(sandboxv1.SandboxPolicySchema, { version: 1 });
    expect(withSandboxProcessIdentity(none).process).toMatchObject({
      runAsUser: "sandbox",
      runAsGroup: "sandbox",
    });
    expect(none.process).toBeUndefined();
    const root = create(sandboxv1.SandboxPolicySchema, { process: { runAsUser: "root" } });
    expect(withSandboxProcessIdentity(root).process).toMatchObject({
      runAsUser: "root",
      runAsGroup: "sandbox",
    });
  });
});
