import { clone, create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";

/** The only identity a sandbox's processes may run as (upstream's ensure_sandbox_process_identity). */
export const SANDBOX_PROCESS_IDENTITY = "sandbox";

/** A copy of `policy` whose empty run_as_user/run_as_group (or missing process) say "sandbox". */
export function withSandboxProcessIdentity(policy: sandboxv1.SandboxPolicy): sandboxv1.SandboxPolicy {
  const next = clone(sandboxv1.SandboxPolicySchema, policy);
  next.process ??= create(sandboxv1.ProcessPolicySchema);
  if (!next.process.runAsUser) next.process.runAsUser = SANDBOX_PROCESS_IDENTITY;
  if (!next.process.runAsGroup) next.process.runAsGroup = SANDBOX_PROCESS_IDENTITY;
  return next;
}
