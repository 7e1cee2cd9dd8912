import { clone, create } from "@bufbuild/protobuf";
import { type SandboxSpec, SandboxSpecSchema, type sandboxv1 } from "@openshell/proto";
import { decodePolicy } from "../policies/policy-revisions.js";
import { policyRules } from "../policies/policy-rules.js";
import type { StoredSettings } from "../policies/stored-settings.js";
import type { PolicyRevisionRecord } from "../store/store.js";

/** What the gateway knows about a fork's source when it builds the fork. */
export interface ForkSource {
  spec: SandboxSpec | undefined;
  /** The source's newest policy revision (any status), if it has any. */
  latestRevision: PolicyRevisionRecord | undefined;
  /** The revision the source's supervisor reported loaded last (current_policy_version), if any. */
  inForceRevision: PolicyRevisionRecord | undefined;
  /** The source's own settings (`settings:<id>`), empty when it has none. */
  settings: StoredSettings;
}

/** The new sandbox's spec and the settings record to store for it (undefined: none). */
export interface ForkInheritance {
  spec: SandboxSpec;
  settings: StoredSettings | undefined;
}

/**
 * What a fork inherits from its source: a copy of the source's spec (template, environment,
 * providers, resources, log level, gpu) whose policy is the one the source has now, with the
 * process identity filled in as CreateSandbox does, and a copy of the source's own settings.
 *
 * "The policy the source has now" is its newest revision, pending (being loaded) or loaded; when
 * the newest failed to load, the source still runs the revision in force (current_policy_version),
 * so that one; with no usable revision, the policy it was created with (none: the fork discovers
 * its own, like the source did).
 */
export function forkInheritance(source: ForkSource): ForkInheritance {
  const spec = source.spec ? clone(SandboxSpecSchema, source.spec) : create(SandboxSpecSchema);
  const policy = currentPolicy(source);
  if (policy) spec.policy = policyRules.withSandboxIdentity(policy);
  else delete spec.policy;
  return { spec, settings: copySettings(source.settings) };
}

function currentPolicy(source: ForkSource): sandboxv1.SandboxPolicy | undefined {
  const latest = source.latestRevision;
  if (latest && latest.status !== "failed") return decodePolicy(latest);
  if (source.inForceRevision && source.inForceRevision.status !== "failed") {
    return decodePolicy(source.inForceRevision);
  }
  return source.spec?.policy;
}

function copySettings(settings: StoredSettings): StoredSettings | undefined {
  if (settings.settings.size === 0) return undefined;
  return { revision: settings.revision, settings: new Map(settings.settings) };
}
