import type { sandboxv1 } from "@openshell/proto";
import type { NetworkDecisions } from "../network/network-decisions.js";

/** Where the installed policy came from. */
export type PolicyOrigin =
  /** GetSandboxConfig: the sandbox's revision (source SANDBOX) or the global policy (GLOBAL). */
  | "gateway"
  /** Discovered on disk (`/etc/openshell/policy.yaml` or the legacy path) and not yet synced back. */
  | "disk"
  /** No policy anywhere: upstream's restrictive default, not yet synced back. */
  | "default";

/** One policy as the supervisor holds it; replaced as a whole, never edited in place. */
export interface InstalledPolicy {
  readonly policy: sandboxv1.SandboxPolicy;
  /** The gateway's revision number (0: not yet stored by the gateway). */
  readonly version: number;
  /** SHA-256 hex (deterministic policy hash), as the gateway reports it. */
  readonly hash: string;
  readonly source: sandboxv1.PolicySource;
  readonly origin: PolicyOrigin;
  /**
   * The policy's network part compiled (the egress proxy decides every connection with it);
   * undefined when it did not compile (a local policy) or was never compiled: every connection is denied.
   */
  readonly network?: NetworkDecisions;
  readonly installedAtMs: number;
}

export type SettingValue = sandboxv1.SettingValue["value"];

/** One setting that differs between two GetSandboxConfig answers (`before`/`after` undefined: absent). */
export interface SettingChange {
  key: string;
  before: SettingValue | undefined;
  after: SettingValue | undefined;
  scope: sandboxv1.SettingScope;
}

export type PolicyListener = (installed: InstalledPolicy, previous: InstalledPolicy | undefined) => void;

/**
 * What the supervisor currently enforces (the enforcement issue consumes it): the last policy that
 * passed validation, the effective settings and the config revision they came with. A policy that
 * fails validation never reaches here, so the last-known-good stays installed.
 */
export class PolicyState {
  private installedPolicy: InstalledPolicy | undefined;
  private effectiveSettings = new Map<string, sandboxv1.EffectiveSetting>();
  private revision: bigint | undefined;
  private readonly listeners = new Set<PolicyListener>();

  get policy(): InstalledPolicy | undefined {
    return this.installedPolicy;
  }

  /** The `config_revision` of the last GetSandboxConfig answer fully applied (undefined: none yet). */
  get configRevision(): bigint | undefined {
    return this.revision;
  }

  get settings(): ReadonlyMap<string, sandboxv1.EffectiveSetting> {
    return this.effectiveSettings;
  }

  /** The `ocsf_json_enabled` setting (upstream gates its OCSF JSONL file on it); false when unset. */
  get ocsfJsonEnabled(): boolean {
    const value = this.effectiveSettings.get("ocsf_json_enabled")?.value?.value;
    return value?.case === "boolValue" ? value.value : false;
  }

  /** Swaps in a validated policy and tells the listeners (a throwing listener does not undo it). */
  install(installed: Omit<InstalledPolicy, "installedAtMs">): InstalledPolicy {
    const previous = this.installedPolicy;
    const next: InstalledPolicy = Object.freeze({ ...installed, installedAtMs: Date.now() });
    this.installedPolicy = next;
    for (const listener of this.listeners) {
      try {
        listener(next, previous);
      } catch {
        // A consumer's bug must not stop the others from seeing the new policy.
      }
    }
    return next;
  }

  /** Replaces the effective settings; returns what changed, sorted by key. */
  replaceSettings(settings: Record<string, sandboxv1.EffectiveSetting>): SettingChange[] {
    const changes: SettingChange[] = [];
    const keys = new Set([...this.effectiveSettings.keys(), ...Object.keys(settings)]);
    for (const key of [...keys].sort()) {
      const before = this.effectiveSettings.get(key);
      const after = settings[key];
      if (sameValue(before?.value?.value, after?.value?.value)) continue;
      changes.push({
        key,
        before: before?.value?.value,
        after: after?.value?.value,
        scope: (after ?? before)?.scope ?? 0,
      });
    }
    this.effectiveSettings = new Map(Object.entries(settings));
    return changes;
  }

  markRevision(revision: bigint): void {
    this.revision = revision;
  }

  /** Calls `listener` on every install; returns the function that unsubscribes it. */
  onPolicyInstalled(listener: PolicyListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function sameValue(a: SettingValue | undefined, b: SettingValue | undefined): boolean {
  const left = a?.case === undefined ? undefined : a;
  const right = b?.case === undefined ? undefined : b;
  if (left === undefined || right === undefined) return left === right;
  if (left.case !== right.case) return false;
  if (left.value instanceof Uint8Array && right.value instanceof Uint8Array) {
    return Buffer.from(left.value).equals(Buffer.from(right.value));
  }
  return left.value === right.value;
}

/** A setting's value as log text: `true`, `42`, `"text"`, `<unset>`. */
export function settingText(value: SettingValue | undefined): string {
  switch (value?.case) {
    case "boolValue":
    case "intValue":
      return String(value.value);
    case "stringValue":
      return JSON.stringify(value.value);
    case "bytesValue":
      return `<${value.value.length} bytes>`;
    default:
      return "<unset>";
  }
}
