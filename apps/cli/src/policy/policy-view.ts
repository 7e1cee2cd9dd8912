import { policyToDocument } from "@openshell/policy";
import { PolicyStatus, type SandboxPolicyRevision, sandboxv1 } from "@openshell/proto";

/** `loaded`, `pending`, … (upstream's lower-case status words). */
export function policyStatusName(status: PolicyStatus): string {
  switch (status) {
    case PolicyStatus.PENDING:
      return "pending";
    case PolicyStatus.LOADED:
      return "loaded";
    case PolicyStatus.FAILED:
      return "failed";
    case PolicyStatus.SUPERSEDED:
      return "superseded";
    default:
      return "unknown";
  }
}

export function settingScopeName(scope: sandboxv1.SettingScope): string {
  switch (scope) {
    case sandboxv1.SettingScope.SANDBOX:
      return "sandbox";
    case sandboxv1.SettingScope.GLOBAL:
      return "global";
    default:
      return "unset";
  }
}

export function policySourceName(source: sandboxv1.PolicySource): string {
  return source === sandboxv1.PolicySource.GLOBAL ? "global" : "sandbox";
}

/** The 12 characters of a hash upstream shows. */
export function shortHash(hash: string): string {
  return hash.slice(0, 12);
}

/** A timestamp in ms as ISO time, or "-" when unset. */
export function timeText(ms: bigint): string {
  return ms > 0n ? new Date(Number(ms)).toISOString() : "-";
}

/** A revision for `-o json` (snake_case, as upstream's field names); the policy only when asked for. */
export function revisionJson(
  revision: SandboxPolicyRevision,
  options: { activeVersion?: number; withPolicy?: boolean } = {},
): Record<string, unknown> {
  return {
    version: revision.version,
    policy_hash: revision.policyHash,
    status: policyStatusName(revision.status),
    ...(options.activeVersion !== undefined ? { active_version: options.activeVersion } : {}),
    created_at_ms: Number(revision.createdAtMs),
    loaded_at_ms: Number(revision.loadedAtMs),
    load_error: revision.loadError,
    ...(options.withPolicy && revision.policy ? { policy: policyToDocument(revision.policy) } : {}),
  };
}
