import { clone } from "@bufbuild/protobuf";
import {
  assertSafePolicy,
  checkStaticFieldsUnchanged,
  configRevision,
  deterministicPolicyHash,
  ensureSandboxProcessIdentity,
  mergePolicy,
  settingForKey,
  settingKeys,
  validateSettingValue,
} from "@openshell/policy";
import { type PolicyMergeOperation, sandboxv1 } from "@openshell/proto";
import type { SettingsRegistry } from "./stored-settings.js";

/**
 * The gateway's one doorway to `@openshell/policy` (identity defaults, validation, hashing,
 * merging): the rules live there, shared with the CLI and the supervisor.
 */
export const policyRules = {
  /** A copy of `policy` with an empty process identity filled in as "sandbox". */
  withSandboxIdentity(policy: sandboxv1.SandboxPolicy): sandboxv1.SandboxPolicy {
    const copy = clone(sandboxv1.SandboxPolicySchema, policy);
    ensureSandboxProcessIdentity(copy);
    return copy;
  },
  /** INVALID_ARGUMENT "policy contains unsafe content: ..." */
  assertSafe: (policy: sandboxv1.SandboxPolicy): void => assertSafePolicy(policy),
  hash: (policy: sandboxv1.SandboxPolicy): string => deterministicPolicyHash(policy),
  /** INVALID_ARGUMENT when `next` changes what a live sandbox cannot change (§4.5). */
  checkStaticFieldsUnchanged: (baseline: sandboxv1.SandboxPolicy, next: sandboxv1.SandboxPolicy): void =>
    checkStaticFieldsUnchanged(baseline, next),
  /** INVALID_ARGUMENT for a malformed operation, FAILED_PRECONDITION for one that cannot apply. */
  merge: (policy: sandboxv1.SandboxPolicy, operations: PolicyMergeOperation[]) =>
    mergePolicy(policy, operations),
  configRevision,
} as const;

/** The settings registry (`ocsf_json_enabled`) seen through the gateway's interface. */
export const settingsRegistry: SettingsRegistry = {
  kindOf: (key) => settingForKey(key)?.kind,
  keys: settingKeys(),
  validate: (key, value) => validateSettingValue(key, value),
};
