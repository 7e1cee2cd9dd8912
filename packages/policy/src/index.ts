export { ACCESS_PRESETS, accessPresetRules, expandAccessPreset } from "./access-presets.js";
export {
  enrichBaselinePaths,
  PROXY_BASELINE_READ_ONLY,
  PROXY_BASELINE_READ_WRITE,
} from "./baseline-paths.js";
export {
  CONTAINER_POLICY_PATH,
  ensureSandboxProcessIdentity,
  LEGACY_CONTAINER_POLICY_PATH,
  restrictiveDefaultPolicy,
  SANDBOX_IDENTITY,
} from "./default-policy.js";
export { canonicalPorts } from "./endpoint-ports.js";
export { checkGlobSyntax, findL7Findings, type L7Finding, validateL7Policy } from "./l7-validation.js";
export { applyMergeOperations, mergePolicy, type PolicyMergeResult } from "./merge-operations.js";
export { configRevision, deterministicPolicyHash, type RevisionSetting } from "./policy-hash.js";
export { formatPolicyPath, type PolicyIssue } from "./policy-issue.js";
export {
  assertSafePolicy,
  findUnsafePolicyContent,
  isTldWildcard,
  MAX_FILESYSTEM_PATHS,
  MAX_PATH_LENGTH,
  validateSandboxPolicy,
} from "./policy-safety.js";
export {
  checkPolicyYaml,
  type PolicyYamlCheck,
  parsePolicyYaml,
  parsePolicyYamlWithWarnings,
} from "./policy-yaml-parser.js";
export { policyToDocument, policyToYaml } from "./policy-yaml-writer.js";
export {
  POLICY_SETTING_KEY,
  parseBoolLike,
  parseSettingValue,
  type RegisteredSetting,
  SETTINGS,
  type SettingKind,
  settingForKey,
  settingKeys,
  settingValueToText,
  validateSettingValue,
} from "./settings-registry.js";
export { checkStaticFieldsUnchanged } from "./static-fields.js";
export {
  buildPolicyUpdatePlan,
  generatedRuleName,
  type PolicyUpdateFlags,
  parseAddEndpointSpec,
  parseRemoveEndpointSpec,
  parseRuleSpec,
  type RuleSpec,
} from "./update-plan.js";
