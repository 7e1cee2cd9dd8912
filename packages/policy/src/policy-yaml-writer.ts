import type { sandboxv1 } from "@openshell/proto";
import { stringify } from "yaml";

/**
 * Serialises a policy to YAML with upstream's rules (§4.1): the `filesystem_policy` key, one port
 * as `port` and several as `ports`, `process` left out when both fields are empty, a query matcher
 * as a plain glob string unless it has `any`, network policies sorted by key, empty fields left
 * out. The output parses back (`parsePolicyYaml`) to the same policy.
 */
export function policyToYaml(policy: sandboxv1.SandboxPolicy): string {
  return stringify(policyToDocument(policy), { lineWidth: 0 });
}

/** The plain object `policyToYaml` writes (also usable as the policy's canonical JSON form). */
export function policyToDocument(policy: sandboxv1.SandboxPolicy): Record<string, unknown> {
  const doc: Record<string, unknown> = { version: policy.version };
  const fs = policy.filesystem;
  if (fs !== undefined) {
    doc.filesystem_policy = compact({
      include_workdir: fs.includeWorkdir,
      read_only: fs.readOnly,
      read_write: fs.readWrite,
    });
  }
  if (policy.landlock !== undefined) doc.landlock = compact({ compatibility: policy.landlock.compatibility });
  const process = policy.process;
  if (process !== undefined && (process.runAsUser !== "" || process.runAsGroup !== "")) {
    doc.process = compact({ run_as_user: process.runAsUser, run_as_group: process.runAsGroup });
  }
  const keys = Object.keys(policy.networkPolicies).sort();
  if (keys.length > 0) {
    const rules: Record<string, unknown> = {};
    for (const key of keys) {
      const rule = policy.networkPolicies[key] as sandboxv1.NetworkPolicyRule;
      rules[key] = compact({
        name: rule.name,
        endpoints: rule.endpoints.map(endpointToDocument),
        binaries: rule.binaries.map((binary) => ({ path: binary.path })),
      });
    }
    doc.network_policies = rules;
  }
  return doc;
}

function endpointToDocument(endpoint: sandboxv1.NetworkEndpoint): Record<string, unknown> {
  const several = endpoint.ports.length > 1;
  return compact({
    host: endpoint.host,
    port: several ? 0 : (endpoint.ports[0] ?? endpoint.port),
    ports: several ? endpoint.ports : [],
    protocol: endpoint.protocol,
    tls: endpoint.tls,
    enforcement: endpoint.enforcement,
    access: endpoint.access,
    rules: endpoint.rules.map((rule) => ({ allow: matchToDocument(rule.allow) })),
    allowed_ips: endpoint.allowedIps,
    deny_rules: endpoint.denyRules.map(matchToDocument),
    allow_encoded_slash: endpoint.allowEncodedSlash,
  });
}

function matchToDocument(
  match:
    | { method: string; path: string; command: string; query: { [key: string]: sandboxv1.L7QueryMatcher } }
    | undefined,
): Record<string, unknown> {
  if (match === undefined) return {};
  const query: Record<string, unknown> = {};
  for (const param of Object.keys(match.query).sort()) {
    const matcher = match.query[param] as sandboxv1.L7QueryMatcher;
    query[param] = matcher.any.length === 0 ? matcher.glob : { any: matcher.any };
  }
  return compact({ method: match.method, path: match.path, command: match.command, query });
}

/** Drops what upstream's serde skips: empty strings, empty lists and maps, zero, false (except include_workdir). */
function compact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key === "include_workdir") out[key] = value;
    else if (value === "" || value === 0 || value === false) continue;
    else if (Array.isArray(value) && value.length === 0) continue;
    else if (isPlainObject(value) && Object.keys(value).length === 0) continue;
    else out[key] = value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
