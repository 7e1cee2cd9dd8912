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
export {
  l7DeniedBody,
  POLICY_HEADER,
  policyDeniedBody,
  ssrfDeniedBody,
} from "./matching/denial-bodies.js";
export { compileGlob, type GlobDialect, type GlobMatcher } from "./matching/glob.js";
export { type L7Decision, L7Evaluator, type L7Mode, type L7Request } from "./matching/l7-rules.js";
export {
  type CompiledEndpoint,
  CompiledNetworkPolicy,
  type ConnectBinary,
  type ConnectDecision,
  type ConnectDenyKind,
  type ConnectRequest,
  checkResolvedAddresses,
  compileNetworkPolicy,
  type Inspection,
} from "./matching/network-policy.js";
export { type CanonicalTarget, canonicalizeRequestTarget, parseQuery } from "./matching/request-target.js";
export {
  type AllowedIpList,
  BLOCKED_CONTROL_PLANE_PORTS,
  isAlwaysBlockedAddress,
  isInternalAddress,
  type SsrfDecision,
  type SsrfDenyKind,
} from "./matching/ssrf.js";
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
