import { OpenShellError } from "@openshell/core";
import { parsePolicyYaml } from "@openshell/policy";
import type { sandboxv1 } from "@openshell/proto";
import { policyProblems } from "./policy-validation.js";

export type DiskPolicyCheck = { ok: true; policy: sandboxv1.SandboxPolicy } | { ok: false; errors: string[] };

/** Parses and validates a policy file from the image: any problem refuses the whole file. */
export function checkDiskPolicy(text: string, path: string): DiskPolicyCheck {
  let policy: sandboxv1.SandboxPolicy;
  try {
    policy = parsePolicyYaml(text, path);
  } catch (error) {
    return { ok: false, errors: [OpenShellError.from(error).message] };
  }
  const { errors } = policyProblems(policy);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, policy };
}
