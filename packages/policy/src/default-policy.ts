import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";

/** Where a sandbox image may ship its own policy; the supervisor looks here when the gateway has none. */
export const CONTAINER_POLICY_PATH = "/etc/openshell/policy.yaml";
/** The pre-rename location, still read after `CONTAINER_POLICY_PATH`. */
export const LEGACY_CONTAINER_POLICY_PATH = "/etc/navigator/policy.yaml";

/** The only accepted process identity (`run_as_user` / `run_as_group`). */
export const SANDBOX_IDENTITY = "sandbox";

/**
 * Upstream's `restrictive_default_policy()`: standard system paths, Landlock best effort, the
 * `sandbox` identity and no network policies (the proxy denies everything).
 */
export function restrictiveDefaultPolicy(): sandboxv1.SandboxPolicy {
  return create(sandboxv1.SandboxPolicySchema, {
    version: 1,
    filesystem: {
      includeWorkdir: true,
      readOnly: ["/usr", "/lib", "/proc", "/dev/urandom", "/app", "/etc", "/var/log"],
      readWrite: ["/sandbox", "/tmp", "/dev/null"],
    },
    landlock: { compatibility: "best_effort" },
    process: { runAsUser: SANDBOX_IDENTITY, runAsGroup: SANDBOX_IDENTITY },
    networkPolicies: {},
  });
}

/**
 * Fills a missing process section or empty identity fields with `sandbox` (upstream's
 * `ensure_sandbox_process_identity`), in place. The gateway calls it before validating and storing.
 */
export function ensureSandboxProcessIdentity(policy: sandboxv1.SandboxPolicy): void {
  policy.process ??= create(sandboxv1.ProcessPolicySchema);
  if (policy.process.runAsUser === "") policy.process.runAsUser = SANDBOX_IDENTITY;
  if (policy.process.runAsGroup === "") policy.process.runAsGroup = SANDBOX_IDENTITY;
}
