import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { emitOcsf, type Logger, OpenShellError, SerialLock } from "@openshell/core";
import {
  type OpenShell,
  PolicyStatus,
  type Sandbox,
  sandboxv1,
  type UpdateConfigRequest,
  type UpdateConfigResponse,
  UpdateConfigResponseSchema,
} from "@openshell/proto";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import type { ComputeRuntime } from "../compute/compute-runtime.js";
import type { SandboxEventHub } from "../events/sandbox-event-hub.js";
import { KeyedSerialLock } from "../policies/keyed-serial-lock.js";
import {
  decodePolicy,
  GLOBAL_POLICY_SANDBOX_ID,
  revisionToProto,
  writeNextRevision,
} from "../policies/policy-revisions.js";
import { policyRules, settingsRegistry } from "../policies/policy-rules.js";
import {
  materializeGlobalSettings,
  mergeEffectiveSettings,
  POLICY_SETTING_KEY,
  requireRegisteredKey,
  SettingsRecords,
  type SettingsRegistry,
  type StoredSettings,
  storedFromProto,
  upsertSetting,
} from "../policies/stored-settings.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import type { ConfigChangeNotifier } from "../sessions/config-change-notifier.js";
import type { Store } from "../store/store.js";
import { bearerToken } from "./bearer-token.js";
import { sandboxNotFound } from "./sandbox-service.js";

/** ListSandboxPolicies page size: upstream's default (the CLI asks for 20) and cap. */
const POLICY_LIST_DEFAULT_LIMIT = 50;
const POLICY_LIST_MAX_LIMIT = 1000;

export interface ConfigServiceDeps {
  store: Store;
  records: SandboxRecords;
  runtime: Pick<ComputeRuntime, "updateSandbox">;
  hub: Pick<SandboxEventHub, "notifyStatus">;
  credentials: SupervisorCredentials;
  configChanges: Pick<ConfigChangeNotifier, "sandboxChanged" | "allChanged">;
  logger: Logger;
  /** Defaults to `@openshell/policy`'s registry. */
  settings?: SettingsRegistry;
}

type ConfigRpcs = Pick<
  ServiceImpl<typeof OpenShell>,
  | "getSandboxConfig"
  | "getGatewayConfig"
  | "updateConfig"
  | "getSandboxPolicyStatus"
  | "listSandboxPolicies"
  | "reportPolicyStatus"
>;

/**
 * The policy control plane (spec §2.12): revisions per sandbox (pending -> loaded/failed ->
 * superseded), the global policy that overrides them, settings with global and sandbox scopes,
 * and the push that tells a supervisor its configuration changed. Writes to one sandbox's revisions
 * run one at a time (a lock per sandbox) and settings writes one at a time (upstream's
 * settings_mutex); the store's unique (sandbox, version) catches anything else, with retry.
 */
export function createConfigRpcs(deps: ConfigServiceDeps): ConfigRpcs {
  const registry = deps.settings ?? settingsRegistry;
  const settings = new SettingsRecords(deps.store);
  const revisionLocks = new KeyedSerialLock();
  const settingsLock = new SerialLock();
  const log = deps.logger;

  const push = (sandboxId: string | undefined) => {
    const pushing = sandboxId
      ? deps.configChanges.sandboxChanged(sandboxId)
      : deps.configChanges.allChanged();
    pushing.catch((error: unknown) =>
      log.warn({ sandbox_id: sandboxId, err: (error as Error).message }, "config_changed push failed"),
    );
  };

  const requireSandboxByName = async (name: string): Promise<Sandbox> => {
    if (!name) throw new OpenShellError("invalid_argument", "name is required");
    const sandbox = await deps.records.getByName(name);
    if (!sandbox) throw sandboxNotFound(name);
    return sandbox;
  };

  const globalPolicy = async (global: StoredSettings): Promise<sandboxv1.SandboxPolicy | undefined> => {
    const value = global.settings.get(POLICY_SETTING_KEY);
    if (!value) return undefined;
    if (value.type !== "Bytes") {
      throw new OpenShellError("internal", "global policy setting has invalid value type; expected bytes");
    }
    return fromBinary(sandboxv1.SandboxPolicySchema, Buffer.from(value.value, "hex"));
  };

  const requireNoGlobalPolicy = async () => {
    if ((await settings.global()).settings.has(POLICY_SETTING_KEY)) {
      throw new OpenShellError(
        "failed_precondition",
        "policy is managed globally; delete global policy before sandbox policy update",
      );
    }
  };

  const response = (fields: Partial<Omit<UpdateConfigResponse, "$typeName">>) =>
    create(UpdateConfigResponseSchema, fields);

  /** The global policy: validated, a new revision loaded at once (or the same one), the `policy` setting. */
  const setGlobalPolicy = async (request: UpdateConfigRequest): Promise<UpdateConfigResponse> => {
    if (request.deleteSetting) {
      throw new OpenShellError("invalid_argument", "delete_setting cannot be combined with policy payload");
    }
    const policy = policyRules.withSandboxIdentity(request.policy as sandboxv1.SandboxPolicy);
    policyRules.assertSafe(policy);
    const hash = policyRules.hash(policy);
    const write = await writeNextRevision(deps.store, GLOBAL_POLICY_SANDBOX_ID, "loaded", (latest) =>
      latest?.policyHash === hash && latest.status === "loaded"
        ? { unchanged: latest.version, hash }
        : { policy, hash },
    );
    const global = await settings.global();
    const payload = Buffer.from(toBinary(sandboxv1.SandboxPolicySchema, policy)).toString("hex");
    if (upsertSetting(global, POLICY_SETTING_KEY, { type: "Bytes", value: payload })) {
      global.revision++;
      await settings.saveGlobal(global);
    }
    if (write.created)
      log.info({ version: write.version, policy_hash: hash }, "global policy revision loaded");
    push(undefined);
    return response({ version: write.version, policyHash: hash, settingsRevision: global.revision });
  };

  const updateGlobalSetting = async (request: UpdateConfigRequest, key: string) => {
    if (key === POLICY_SETTING_KEY && !request.deleteSetting) {
      throw new OpenShellError("invalid_argument", "reserved key 'policy' must be set via the policy field");
    }
    if (key !== POLICY_SETTING_KEY) requireRegisteredKey(registry, key);
    const global = await settings.global();
    let changed: boolean;
    if (request.deleteSetting) {
      changed = global.settings.delete(key);
      if (changed && key === POLICY_SETTING_KEY) {
        const latest = await deps.store.latestPolicyRevision(GLOBAL_POLICY_SANDBOX_ID);
        if (latest)
          await deps.store.supersedeOlderPolicyRevisions(GLOBAL_POLICY_SANDBOX_ID, latest.version + 1);
      }
    } else {
      changed = upsertSetting(global, key, storedFromProto(registry, key, request.settingValue));
    }
    if (changed) {
      global.revision++;
      await settings.saveGlobal(global);
      push(undefined);
    }
    return response({ settingsRevision: global.revision, deleted: request.deleteSetting && changed });
  };

  const updateSandboxSetting = async (request: UpdateConfigRequest, sandbox: Sandbox, key: string) => {
    if (key === POLICY_SETTING_KEY) {
      throw new OpenShellError("invalid_argument", "reserved key 'policy' must be set via policy commands");
    }
    const globallyManaged = (await settings.global()).settings.has(key);
    const current = await settings.sandbox(sandbox.id);
    let changed: boolean;
    if (request.deleteSetting) {
      if (globallyManaged) {
        throw new OpenShellError(
          "failed_precondition",
          `setting '${key}' is managed globally; delete the global setting first`,
        );
      }
      changed = current.settings.delete(key);
    } else {
      if (globallyManaged) {
        throw new OpenShellError(
          "failed_precondition",
          `setting '${key}' is managed globally; delete the global setting before sandbox update`,
        );
      }
      changed = upsertSetting(current, key, storedFromProto(registry, key, request.settingValue));
    }
    if (changed) {
      current.revision++;
      await settings.saveSandbox(sandbox.id, current);
      push(sandbox.id);
    }
    return response({ settingsRevision: current.revision, deleted: request.deleteSetting && changed });
  };

  /**
   * A full sandbox policy (§4.6): identity filled in; checked against the sandbox's creation policy
   * (static fields, safety), or, for a sandbox created without one (it discovered its own), that
   * policy becomes spec.policy; the same hash as the latest revision answers that version, else a
   * new pending revision supersedes the older ones.
   */
  const setSandboxPolicy = async (request: UpdateConfigRequest, name: string) => {
    await requireNoGlobalPolicy();
    const policy = policyRules.withSandboxIdentity(request.policy as sandboxv1.SandboxPolicy);
    return revisionLocks.run(await sandboxIdOf(name), async () => {
      const sandbox = await requireSandboxByName(name);
      const baseline = sandbox.spec?.policy;
      if (baseline) policyRules.checkStaticFieldsUnchanged(baseline, policy);
      policyRules.assertSafe(policy);
      if (!baseline) {
        await deps.runtime.updateSandbox(sandbox.id, (current) => {
          if (!current.spec || current.spec.policy) return undefined;
          current.spec.policy = policy;
          return current;
        });
        log.info(
          { sandbox_id: sandbox.id },
          "UpdateConfig: backfilled spec.policy from the sandbox-discovered policy",
        );
      }
      const hash = policyRules.hash(policy);
      const write = await writeNextRevision(deps.store, sandbox.id, "pending", (latest) =>
        latest?.policyHash === hash ? { unchanged: latest.version, hash } : { policy, hash },
      );
      announce(sandbox, write);
      return response({ version: write.version, policyHash: write.hash });
    });
  };

  /** Merge operations against the latest revision (or the creation policy), with optimistic retry. */
  const mergeSandboxPolicy = async (request: UpdateConfigRequest, name: string) => {
    await requireNoGlobalPolicy();
    return revisionLocks.run(await sandboxIdOf(name), async () => {
      const sandbox = await requireSandboxByName(name);
      const baseline = sandbox.spec?.policy;
      const write = await writeNextRevision(deps.store, sandbox.id, "pending", (latest) => {
        const current = latest ? decodePolicy(latest) : (baseline ?? create(sandboxv1.SandboxPolicySchema));
        const merged = policyRules.merge(current, request.mergeOperations);
        if (baseline) policyRules.checkStaticFieldsUnchanged(baseline, merged.policy);
        policyRules.assertSafe(merged.policy);
        const hash = policyRules.hash(merged.policy);
        if (latest?.policyHash === hash) return { unchanged: latest.version, hash };
        if (!latest && !merged.changed) return { unchanged: 0, hash };
        return { policy: merged.policy, hash };
      });
      if (write.created) {
        // Upstream's gateway audit line for merges (CONFIG, container_image openshell/gateway).
        emitOcsf(log, {
          class: "CONFIG",
          activity: "MERGED",
          message: `gateway merged ${request.mergeOperations.length} incremental policy operation(s)`,
          fields: {
            sandbox_id: sandbox.id,
            sandbox_name: sandbox.name,
            container_image: "openshell/gateway",
            policy_version: `v${write.version}`,
            policy_hash: write.hash,
          },
        });
      }
      announce(sandbox, write);
      return response({ version: write.version, policyHash: write.hash });
    });
  };

  const announce = (sandbox: Sandbox, write: { version: number; hash: string; created: boolean }) => {
    if (!write.created) return;
    log.info(
      { sandbox_id: sandbox.id, version: write.version, policy_hash: write.hash },
      "UpdateConfig: new policy version persisted",
    );
    deps.hub.notifyStatus(sandbox.id);
    push(sandbox.id);
  };

  const sandboxIdOf = async (name: string): Promise<string> => (await requireSandboxByName(name)).id;

  /** A supervisor credential may only sync its own sandbox's policy (upstream's sandbox-secret rule). */
  const checkSupervisorCaller = (request: UpdateConfigRequest, context: HandlerContext) => {
    const token = bearerToken(context.requestHeader.get("authorization"));
    if (!token) return undefined;
    const owner = deps.credentials.verify(token);
    if (request.global) {
      throw new OpenShellError("permission_denied", "sandbox secret cannot mutate global config");
    }
    if (request.deleteSetting) {
      throw new OpenShellError("permission_denied", "sandbox secret cannot delete settings");
    }
    if (!request.name.trim() || !request.policy || request.settingKey.trim()) {
      throw new OpenShellError("permission_denied", "sandbox secret may only perform sandbox policy sync");
    }
    return owner;
  };

  return {
    /**
     * The supervisor's view: the latest revision (any status), version 1 backfilled from
     * spec.policy, nothing when the sandbox has no policy (it discovers one), the global policy
     * when there is one; settings merged. A supervisor credential, when sent, must be this
     * sandbox's; callers without one (the CLI) read what GetSandbox already shows them.
     */
    async getSandboxConfig(request, context) {
      if (!request.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
      const token = bearerToken(context.requestHeader.get("authorization"));
      if (token) deps.credentials.authorize(token, request.sandboxId);
      const sandbox = await deps.records.get(request.sandboxId);
      if (!sandbox) throw new OpenShellError("not_found", "sandbox not found");

      let latest = await deps.store.latestPolicyRevision(sandbox.id);
      const specPolicy = sandbox.spec?.policy;
      if (!latest && specPolicy) {
        // Lazy backfill: the creation policy becomes version 1, loaded (unless a writer got there first).
        latest = await revisionLocks.run(sandbox.id, async () => {
          const write = await writeNextRevision(deps.store, sandbox.id, "loaded", (current) =>
            current
              ? { unchanged: current.version, hash: current.policyHash }
              : { policy: specPolicy, hash: policyRules.hash(specPolicy) },
          );
          if (write.created) {
            log.info({ sandbox_id: sandbox.id }, "GetSandboxConfig served from spec (backfilled version 1)");
          }
          return deps.store.latestPolicyRevision(sandbox.id);
        });
      }
      let policy = latest ? decodePolicy(latest) : undefined;
      let version = latest?.version ?? 0;
      let policyHash = latest?.policyHash ?? "";

      const global = await settings.global();
      const sandboxSettings = await settings.sandbox(sandbox.id);
      let policySource = sandboxv1.PolicySource.SANDBOX;
      let globalPolicyVersion = 0;
      const override = await globalPolicy(global);
      if (override) {
        policy = override;
        policyHash = policyRules.hash(override);
        policySource = sandboxv1.PolicySource.GLOBAL;
        if (version === 0) version = 1;
        globalPolicyVersion = (await deps.store.latestPolicyRevision(GLOBAL_POLICY_SANDBOX_ID))?.version ?? 0;
      }
      const effective = mergeEffectiveSettings(registry, global, sandboxSettings);
      const configRevision = policyRules.configRevision({
        policySource,
        policyHash: policy ? policyHash : "",
        settings: Object.entries(effective).map(([key, setting]) => ({
          key,
          scope: setting.scope,
          value: setting.value,
        })),
      });
      return {
        policy,
        version,
        policyHash,
        settings: effective,
        configRevision,
        policySource,
        globalPolicyVersion,
      };
    },

    async getGatewayConfig() {
      const global = await settings.global();
      return { settings: materializeGlobalSettings(registry, global), settingsRevision: global.revision };
    },

    async updateConfig(request, context) {
      const supervisorOf = checkSupervisorCaller(request, context);
      const key = request.settingKey.trim();
      const hasPolicy = request.policy !== undefined;
      const hasSetting = key !== "";
      const hasMerge = request.mergeOperations.length > 0;
      const mutations = Number(hasPolicy) + Number(hasSetting) + Number(hasMerge);
      if (mutations > 1) {
        throw new OpenShellError(
          "invalid_argument",
          "policy, setting_key, and merge_operations are mutually exclusive",
        );
      }
      if (mutations === 0) {
        throw new OpenShellError(
          "invalid_argument",
          "one of policy, setting_key, or merge_operations must be provided",
        );
      }

      if (request.global) {
        if (hasMerge) {
          throw new OpenShellError(
            "invalid_argument",
            "merge_operations are not supported for global policy updates",
          );
        }
        return settingsLock.run(() =>
          hasPolicy ? setGlobalPolicy(request) : updateGlobalSetting(request, key),
        );
      }

      if (!request.name) {
        throw new OpenShellError("invalid_argument", "name is required for sandbox-scoped updates");
      }
      const sandbox = await requireSandboxByName(request.name);
      if (supervisorOf !== undefined && supervisorOf !== sandbox.id) {
        throw new OpenShellError(
          "permission_denied",
          `supervisor credential belongs to sandbox ${supervisorOf}, not ${sandbox.id}`,
        );
      }
      if (hasSetting) return settingsLock.run(() => updateSandboxSetting(request, sandbox, key));
      if (hasMerge) return mergeSandboxPolicy(request, request.name);
      return setSandboxPolicy(request, request.name);
    },

    async getSandboxPolicyStatus(request) {
      let ownerId = GLOBAL_POLICY_SANDBOX_ID;
      let activeVersion = 0;
      if (!request.global) {
        const sandbox = await requireSandboxByName(request.name);
        ownerId = sandbox.id;
        activeVersion = sandbox.currentPolicyVersion;
      }
      const record =
        request.version === 0
          ? await deps.store.latestPolicyRevision(ownerId)
          : await deps.store.getPolicyRevision(ownerId, request.version);
      if (!record) {
        throw new OpenShellError(
          "not_found",
          request.global ? "no global policy revision found" : "no policy revision found for this sandbox",
        );
      }
      return { revision: revisionToProto(record, true), activeVersion };
    },

    async listSandboxPolicies(request) {
      const ownerId = request.global
        ? GLOBAL_POLICY_SANDBOX_ID
        : (await requireSandboxByName(request.name)).id;
      const limit = Math.min(request.limit || POLICY_LIST_DEFAULT_LIMIT, POLICY_LIST_MAX_LIMIT);
      const records = await deps.store.listPolicyRevisions(ownerId, { limit, offset: request.offset });
      return { revisions: records.map((record) => revisionToProto(record, false)) };
    },

    /**
     * The supervisor's load result. LOADED supersedes the older revisions and becomes the sandbox's
     * current_policy_version; FAILED records the error and leaves current_policy_version (the
     * revision in force) as it was.
     */
    async reportPolicyStatus(request, context) {
      if (!request.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
      deps.credentials.authorize(bearerToken(context.requestHeader.get("authorization")), request.sandboxId);
      if (request.version === 0) throw new OpenShellError("invalid_argument", "version is required");
      if (request.status !== PolicyStatus.LOADED && request.status !== PolicyStatus.FAILED) {
        throw new OpenShellError("invalid_argument", "status must be LOADED or FAILED");
      }
      const loaded = request.status === PolicyStatus.LOADED;
      await revisionLocks.run(request.sandboxId, async () => {
        const updated = await deps.store.updatePolicyRevisionStatus(
          request.sandboxId,
          request.version,
          loaded ? "loaded" : "failed",
          loaded ? { loadedAtMs: Date.now(), loadError: "" } : { loadError: request.loadError },
        );
        if (!updated) throw new OpenShellError("not_found", "policy revision not found");
        if (loaded) {
          await deps.store.supersedeOlderPolicyRevisions(request.sandboxId, request.version);
          await deps.runtime.updateSandbox(request.sandboxId, (sandbox) => {
            if (sandbox.currentPolicyVersion === request.version) return undefined;
            sandbox.currentPolicyVersion = request.version;
            return sandbox;
          });
        }
      });
      log.info(
        {
          sandbox_id: request.sandboxId,
          version: request.version,
          status: loaded ? "loaded" : "failed",
          load_error: loaded ? undefined : request.loadError || undefined,
        },
        "ReportPolicyStatus: sandbox reported policy load result",
      );
      return {};
    },
  };
}
