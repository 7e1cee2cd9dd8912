import { Code, ConnectError } from "@connectrpc/connect";
import { OpenShellError } from "@openshell/core";
import { describe, expect, it } from "vitest";
import { explainPolicyError } from "./policy-errors.js";

function explained(code: Code, message: string, context = {}): OpenShellError {
  const result = explainPolicyError(new ConnectError(message, code), context);
  if (!(result instanceof OpenShellError)) throw new Error("not explained");
  return result;
}

describe("explainPolicyError", () => {
  it("maps an unknown sandbox to not_found with where to look", () => {
    const error = explained(Code.NotFound, "sandbox 'nope' not found; ...", { sandbox: "nope" });
    expect(error.code).toBe("not_found");
    expect(error.message).toBe("sandbox 'nope' not found (see: openshell sandbox list)");
  });

  it("says how to set a first policy, or where to find versions", () => {
    expect(
      explained(Code.NotFound, "no policy revision found for this sandbox", { sandbox: "a" }).message,
    ).toBe("sandbox 'a' has no policy revision yet; set one with: openshell policy set a --policy FILE");
    expect(
      explained(Code.NotFound, "no policy revision found for this sandbox", { sandbox: "a", version: 9 })
        .message,
    ).toContain("openshell policy list a");
  });

  it("tells how to lift a global policy or a global setting", () => {
    const policy = explained(
      Code.FailedPrecondition,
      "policy is managed globally; delete global policy before sandbox policy update",
      { sandbox: "a" },
    );
    expect(policy.code).toBe("failed_precondition");
    expect(policy.message).toContain("openshell policy delete --global");
    const setting = explained(
      Code.FailedPrecondition,
      "setting 'ocsf_json_enabled' is managed globally; delete the global setting first",
      { sandbox: "a", key: "ocsf_json_enabled" },
    );
    expect(setting.message).toContain("openshell settings delete --key ocsf_json_enabled --global");
  });

  it("keeps the gateway's reason for INVALID_ARGUMENT (exit 2) and passes other errors on", () => {
    const invalid = explained(Code.InvalidArgument, "policy contains unsafe content: x");
    expect(invalid.code).toBe("invalid_argument");
    expect(invalid.message).toContain("policy contains unsafe content: x");
    const transport = new ConnectError("connect ECONNREFUSED", Code.Unavailable);
    expect(explainPolicyError(transport, {})).toBe(transport);
    const plain = new Error("x");
    expect(explainPolicyError(plain, {})).toBe(plain);
  });
});
