import { validateL7Policy, validateSandboxPolicy } from "@openshell/policy";
import type { sandboxv1 } from "@openshell/proto";

export interface PolicyProblems {
  /** Any of these refuses the policy: the last-known-good stays installed. */
  errors: string[];
  warnings: string[];
}

/** What the supervisor checks before installing a policy: upstream's safety rules and its L7 checks. */
export function policyProblems(policy: sandboxv1.SandboxPolicy): PolicyProblems {
  const l7 = validateL7Policy(policy);
  return { errors: [...validateSandboxPolicy(policy), ...l7.errors], warnings: l7.warnings };
}
