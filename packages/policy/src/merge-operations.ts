import { clone, equals } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { type PolicyMergeOperation, sandboxv1 } from "@openshell/proto";
import { accessPresetRules } from "./access-presets.js";
import { canonicalPorts, normalizeEndpointPorts } from "./endpoint-ports.js";

/** The outcome of merging operations into a policy (upstream's `PolicyMergeResult`). */
export type PolicyMergeResult = {
  policy: sandboxv1.SandboxPolicy;
  /** Upstream's merge warnings, e.g. "endpoint h:443 keeps existing protocol 'rest' and ignores incoming 'sql'". */
  warnings: string[];
  /** False when the operations left the policy as it was. */
  changed: boolean;
};

/**
 * Applies `policy update` merge operations in order (upstream `merge_policy`, §4.6) to a copy of
 * `policy`; the input is not modified. Malformed operations are `invalid_argument` naming
 * `merge_operations[i]` (upstream's messages); an operation that cannot apply to this policy (no
 * endpoint host:port, endpoint without L7 inspection, …) is `failed_precondition`, as upstream maps it.
 */
export function mergePolicy(
  policy: sandboxv1.SandboxPolicy,
  operations: ReadonlyArray<PolicyMergeOperation>,
): PolicyMergeResult {
  operations.forEach(checkOperation);
  const merged = clone(sandboxv1.SandboxPolicySchema, policy);
  const warnings: string[] = [];
  operations.forEach((operation, index) => {
    try {
      applyOperation(merged, operation, warnings);
    } catch (error) {
      if (error instanceof OpenShellError) {
        throw new OpenShellError(error.code, `merge_operations[${index}]: ${error.message}`);
      }
      throw error;
    }
  });
  return { policy: merged, warnings, changed: !equals(sandboxv1.SandboxPolicySchema, merged, policy) };
}

/** `mergePolicy` returning only the merged policy. */
export function applyMergeOperations(
  policy: sandboxv1.SandboxPolicy,
  operations: ReadonlyArray<PolicyMergeOperation>,
): sandboxv1.SandboxPolicy {
  return mergePolicy(policy, operations).policy;
}

/** The gateway's `parse_merge_operations` checks, with upstream's messages. */
function checkOperation(operation: PolicyMergeOperation, index: number): void {
  const at = `merge_operations[${index}]`;
  const op = operation.operation;
  const invalid = (message: string) => new OpenShellError("invalid_argument", message);
  switch (op.case) {
    case undefined:
      throw invalid(`${at} is missing an operation`);
    case "addRule":
      if (op.value.ruleName.trim() === "") throw invalid(`${at}.add_rule.rule_name is required`);
      if (op.value.rule === undefined || op.value.rule.endpoints.length === 0) {
        throw invalid(`${at}.add_rule.rule must contain at least one endpoint`);
      }
      return;
    case "removeEndpoint":
      if (op.value.host.trim() === "" || op.value.port === 0) {
        throw invalid(`${at}.remove_endpoint requires host and non-zero port`);
      }
      return;
    case "removeRule":
      if (op.value.ruleName.trim() === "") throw invalid(`${at}.remove_rule.rule_name is required`);
      return;
    case "addDenyRules":
      if (op.value.host.trim() === "" || op.value.port === 0 || op.value.denyRules.length === 0) {
        throw invalid(`${at}.add_deny_rules requires host, non-zero port, and at least one deny rule`);
      }
      return;
    case "addAllowRules":
      if (op.value.host.trim() === "" || op.value.port === 0 || op.value.rules.length === 0) {
        throw invalid(`${at}.add_allow_rules requires host, non-zero port, and at least one allow rule`);
      }
      if (op.value.rules.some((rule) => rule.allow === undefined)) {
        throw invalid(`${at}.add_allow_rules rules must include allow payloads`);
      }
      return;
    case "removeBinary":
      if (op.value.ruleName.trim() === "" || op.value.binaryPath.trim() === "") {
        throw invalid(`${at}.remove_binary requires rule_name and binary_path`);
      }
      return;
  }
}

function applyOperation(
  policy: sandboxv1.SandboxPolicy,
  operation: PolicyMergeOperation,
  warnings: string[],
): void {
  const op = operation.operation;
  switch (op.case) {
    case "addRule":
      addRule(policy, op.value.ruleName.trim(), op.value.rule as sandboxv1.NetworkPolicyRule, warnings);
      return;
    case "removeEndpoint": {
      const ruleName = op.value.ruleName.trim();
      removeEndpoint(policy, ruleName === "" ? undefined : ruleName, op.value.host.trim(), op.value.port);
      return;
    }
    case "removeRule":
      delete policy.networkPolicies[op.value.ruleName.trim()];
      return;
    case "addDenyRules": {
      const host = op.value.host.trim();
      const endpoint = requireRestEndpoint(policy, host, op.value.port);
      if (endpoint.access === "" && endpoint.rules.length === 0) {
        throw new OpenShellError(
          "failed_precondition",
          `endpoint ${host}:${op.value.port} has no base allow set; configure access or explicit allow rules before adding deny rules`,
        );
      }
      appendUnique(sandboxv1.L7DenyRuleSchema, endpoint.denyRules, op.value.denyRules);
      return;
    }
    case "addAllowRules": {
      const host = op.value.host.trim();
      const endpoint = requireRestEndpoint(policy, host, op.value.port);
      expandExistingAccess(endpoint, host, op.value.port, warnings);
      appendUnique(sandboxv1.L7RuleSchema, endpoint.rules, op.value.rules);
      return;
    }
    case "removeBinary": {
      const ruleName = op.value.ruleName.trim();
      const binaryPath = op.value.binaryPath.trim();
      const rule = policy.networkPolicies[ruleName];
      if (rule === undefined) return;
      const before = rule.binaries.length;
      rule.binaries = rule.binaries.filter((binary) => binary.path !== binaryPath);
      if (rule.binaries.length !== before && rule.binaries.length === 0)
        delete policy.networkPolicies[ruleName];
      return;
    }
    case undefined:
      return;
  }
}

function addRule(
  policy: sandboxv1.SandboxPolicy,
  ruleName: string,
  incomingRule: sandboxv1.NetworkPolicyRule,
  warnings: string[],
): void {
  const incoming = clone(sandboxv1.NetworkPolicyRuleSchema, incomingRule);
  for (const endpoint of incoming.endpoints) normalizeEndpoint(endpoint);
  incoming.binaries = dedupBy(incoming.binaries, (binary) => binary.path);
  if (incoming.name === "") incoming.name = ruleName;

  // The named rule when it exists, else the first rule (in key order) sharing an endpoint.
  const targetKey =
    policy.networkPolicies[ruleName] !== undefined
      ? ruleName
      : Object.keys(policy.networkPolicies)
          .sort()
          .find((key) =>
            rulesShareEndpoint(policy.networkPolicies[key] as sandboxv1.NetworkPolicyRule, incoming),
          );
  if (targetKey === undefined) {
    policy.networkPolicies[ruleName] = incoming;
    return;
  }
  const existing = policy.networkPolicies[targetKey] as sandboxv1.NetworkPolicyRule;
  appendUniqueBy(existing.binaries, incoming.binaries, (binary) => binary.path);
  for (const endpoint of incoming.endpoints) {
    const match = existing.endpoints.find((candidate) => endpointsOverlap(candidate, endpoint));
    if (match === undefined) existing.endpoints.push(endpoint);
    else mergeEndpoint(match, endpoint, warnings);
  }
}

function mergeEndpoint(
  existing: sandboxv1.NetworkEndpoint,
  incoming: sandboxv1.NetworkEndpoint,
  warnings: string[],
) {
  const host = existing.host === "" ? incoming.host : existing.host;
  const port = canonicalPorts(existing)[0] ?? canonicalPorts(incoming)[0] ?? 0;
  if (existing.host === "") existing.host = incoming.host;
  const ports = [...new Set([...canonicalPorts(existing), ...canonicalPorts(incoming)])].sort(
    (a, b) => a - b,
  );
  existing.port = ports[0] ?? 0;
  existing.ports = ports;

  for (const [field, label] of [
    ["protocol", "protocol"],
    ["enforcement", "enforcement"],
    ["tls", "tls mode"],
  ] as const) {
    const incomingValue = incoming[field];
    if (incomingValue === "") continue;
    if (existing[field] === "") existing[field] = incomingValue;
    else if (existing[field] !== incomingValue) {
      warnings.push(
        `endpoint ${host}:${port} keeps existing ${label} '${existing[field]}' and ignores incoming '${incomingValue}'`,
      );
    }
  }

  const ignoredAccess = `endpoint ${host}:${port} already uses explicit rules; incoming access preset '${incoming.access}' was ignored`;
  if (incoming.rules.length > 0) {
    expandExistingAccess(existing, host, port, warnings);
    appendUnique(sandboxv1.L7RuleSchema, existing.rules, incoming.rules);
    if (incoming.access !== "") warnings.push(ignoredAccess);
  } else if (incoming.access !== "") {
    if (existing.rules.length > 0) warnings.push(ignoredAccess);
    else if (existing.access === "") existing.access = incoming.access;
    else if (existing.access !== incoming.access) {
      warnings.push(
        `endpoint ${host}:${port} keeps existing access preset '${existing.access}' and ignores incoming '${incoming.access}'`,
      );
    }
  }
  appendUnique(sandboxv1.L7DenyRuleSchema, existing.denyRules, incoming.denyRules);
  appendUniqueBy(existing.allowedIps, incoming.allowedIps, (ip) => ip);
  normalizeEndpoint(existing);
}

function expandExistingAccess(
  endpoint: sandboxv1.NetworkEndpoint,
  host: string,
  port: number,
  warnings: string[],
) {
  if (endpoint.access === "") return;
  const access = endpoint.access;
  const expanded = accessPresetRules(access);
  if (expanded === undefined) {
    throw new OpenShellError(
      "invalid_argument",
      `endpoint ${host}:${port} uses unsupported access preset '${access}'`,
    );
  }
  endpoint.access = "";
  appendUnique(sandboxv1.L7RuleSchema, endpoint.rules, expanded);
  warnings.push(`expanded access preset '${access}' to explicit rules for endpoint ${host}:${port}`);
}

/** The first endpoint (rules in key order) for host:port, which must have `protocol: rest`. */
function requireRestEndpoint(
  policy: sandboxv1.SandboxPolicy,
  host: string,
  port: number,
): sandboxv1.NetworkEndpoint {
  let endpoint: sandboxv1.NetworkEndpoint | undefined;
  for (const key of Object.keys(policy.networkPolicies).sort()) {
    endpoint = policy.networkPolicies[key]?.endpoints.find((candidate) =>
      matchesHostPort(candidate, host, port),
    );
    if (endpoint !== undefined) break;
  }
  if (endpoint === undefined) {
    throw new OpenShellError(
      "failed_precondition",
      `endpoint ${host}:${port} was not found in the current policy`,
    );
  }
  if (endpoint.protocol === "") {
    throw new OpenShellError(
      "failed_precondition",
      `endpoint ${host}:${port} has no L7 inspection configured (protocol is empty)`,
    );
  }
  if (endpoint.protocol !== "rest") {
    throw new OpenShellError(
      "failed_precondition",
      `endpoint ${host}:${port} uses unsupported protocol '${endpoint.protocol}'; this operation currently supports only protocol 'rest'`,
    );
  }
  return endpoint;
}

function removeEndpoint(
  policy: sandboxv1.SandboxPolicy,
  ruleName: string | undefined,
  host: string,
  port: number,
) {
  const keys =
    ruleName === undefined
      ? Object.keys(policy.networkPolicies).sort()
      : policy.networkPolicies[ruleName] !== undefined
        ? [ruleName]
        : [];
  for (const key of keys) {
    const rule = policy.networkPolicies[key] as sandboxv1.NetworkPolicyRule;
    rule.endpoints = rule.endpoints.filter((endpoint) => {
      if (!matchesHostPort(endpoint, host, port)) return true;
      const remaining = [...new Set(canonicalPorts(endpoint).filter((p) => p !== port))].sort(
        (a, b) => a - b,
      );
      if (remaining.length === 0) return false;
      endpoint.port = remaining[0] as number;
      endpoint.ports = remaining;
      return true;
    });
    if (rule.endpoints.length === 0) delete policy.networkPolicies[key];
  }
}

function matchesHostPort(endpoint: sandboxv1.NetworkEndpoint, host: string, port: number): boolean {
  return endpoint.host.toLowerCase() === host.toLowerCase() && canonicalPorts(endpoint).includes(port);
}

function rulesShareEndpoint(
  existing: sandboxv1.NetworkPolicyRule,
  incoming: sandboxv1.NetworkPolicyRule,
): boolean {
  return incoming.endpoints.some((a) => existing.endpoints.some((b) => endpointsOverlap(b, a)));
}

function endpointsOverlap(left: sandboxv1.NetworkEndpoint, right: sandboxv1.NetworkEndpoint): boolean {
  if (left.host.toLowerCase() !== right.host.toLowerCase()) return false;
  const rightPorts = canonicalPorts(right);
  return canonicalPorts(left).some((port) => rightPorts.includes(port));
}

function normalizeEndpoint(endpoint: sandboxv1.NetworkEndpoint): void {
  normalizeEndpointPorts(endpoint);
  endpoint.allowedIps = dedupBy(endpoint.allowedIps, (ip) => ip);
  endpoint.rules = dedupMessages(sandboxv1.L7RuleSchema, endpoint.rules);
  endpoint.denyRules = dedupMessages(sandboxv1.L7DenyRuleSchema, endpoint.denyRules);
}

type L7Schema = typeof sandboxv1.L7RuleSchema | typeof sandboxv1.L7DenyRuleSchema;

function appendUnique<T extends sandboxv1.L7Rule | sandboxv1.L7DenyRule>(
  schema: L7Schema,
  existing: T[],
  incoming: ReadonlyArray<T>,
): void {
  for (const item of incoming) {
    if (!existing.some((present) => equals(schema as never, present as never, item as never))) {
      existing.push(clone(schema as never, item as never) as T);
    }
  }
}

function dedupMessages<T extends sandboxv1.L7Rule | sandboxv1.L7DenyRule>(schema: L7Schema, items: T[]): T[] {
  const kept: T[] = [];
  appendUnique(schema, kept, items);
  return kept;
}

function appendUniqueBy<T>(existing: T[], incoming: ReadonlyArray<T>, key: (item: T) => string): void {
  const seen = new Set(existing.map(key));
  for (const item of incoming) {
    if (!seen.has(key(item))) {
      seen.add(key(item));
      existing.push(item);
    }
  }
}

function dedupBy<T>(items: ReadonlyArray<T>, key: (item: T) => string): T[] {
  const kept: T[] = [];
  appendUniqueBy(kept, items, key);
  return kept;
}
