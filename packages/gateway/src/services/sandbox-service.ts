import { randomUUID } from "node:crypto";
import { clone, create, fromBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { generateSandboxName, OpenShellError, randomLetters } from "@openshell/core";
import {
  type OpenShell,
  type Sandbox,
  SandboxPhase,
  SandboxSchema,
  type SandboxSpec,
  SandboxSpecSchema,
  SandboxTemplateSchema,
  SshSessionSchema,
} from "@openshell/proto";
import type { ComputeRuntime } from "../compute/compute-runtime.js";
import { phaseName } from "../compute/phase.js";
import { policyRules } from "../policies/policy-rules.js";
import { SettingsRecords } from "../policies/stored-settings.js";
import { forkInheritance } from "../sandboxes/fork-inheritance.js";
import { type SandboxRecords, sandboxSettingsId } from "../sandboxes/sandbox-records.js";
import { validateSandboxName, validateSandboxSpec } from "../sandboxes/validation.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";
import { ObjectTypes, type Store } from "../store/store.js";

const LIST_DEFAULT_LIMIT = 100;
const LIST_MAX_LIMIT = 1000;
const NAME_ATTEMPTS = 8;

export interface SandboxServiceDeps {
  records: SandboxRecords;
  store: Store;
  runtime: ComputeRuntime;
  sessions: SupervisorSessionRegistry;
  namespace: string;
}

type SandboxRpcs = Pick<
  ServiceImpl<typeof OpenShell>,
  | "createSandbox"
  | "getSandbox"
  | "listSandboxes"
  | "deleteSandbox"
  | "stopSandbox"
  | "startSandbox"
  | "forkSandbox"
>;

/** Sandbox CRUD with upstream's semantics (spec §2.5). */
export function createSandboxRpcs(deps: SandboxServiceDeps): SandboxRpcs {
  const settingsRecords = new SettingsRecords(deps.store);
  return {
    async createSandbox(request) {
      validateSandboxSpec(request.spec);
      if (request.name) validateSandboxName(request.name);
      const spec = clone(SandboxSpecSchema, request.spec);
      if (spec.policy) {
        // Upstream: the identity filled in, then INVALID_ARGUMENT "policy contains unsafe content: ...".
        spec.policy = policyRules.withSandboxIdentity(spec.policy);
        policyRules.assertSafe(spec.policy);
      }
      await requireProviders(deps.store, spec);
      if (!spec.template) spec.template = create(SandboxTemplateSchema, {});
      if (!spec.template.image) spec.template.image = deps.runtime.defaultImage;

      const sandbox = create(SandboxSchema, {
        id: randomUUID(),
        name: request.name || (await freeGeneratedName(deps.records)),
        namespace: deps.namespace,
        spec,
        phase: SandboxPhase.PROVISIONING,
      });
      if (await deps.records.getByName(sandbox.name)) {
        throw new OpenShellError("already_exists", `sandbox '${sandbox.name}' already exists`);
      }
      await deps.runtime.validateCreate(sandbox);
      // A name taken meanwhile fails in the store with the same ALREADY_EXISTS message as above.
      return { sandbox: await deps.runtime.createSandbox(sandbox) };
    },

    async getSandbox(request) {
      if (!request.name) throw new OpenShellError("invalid_argument", "name is required");
      const sandbox = await deps.records.getByName(request.name);
      if (!sandbox) throw sandboxNotFound(request.name);
      return { sandbox };
    },

    async listSandboxes(request) {
      const limit = clampLimit(request.limit);
      return { sandboxes: await deps.records.list({ limit, offset: request.offset }) };
    },

    async deleteSandbox(request) {
      if (!request.name) throw new OpenShellError("invalid_argument", "name is required");
      const sandbox = await deps.records.getByName(request.name);
      if (!sandbox) throw sandboxNotFound(request.name);
      await deleteSshSessionsOf(deps.store, sandbox.id);
      await deps.store.deleteObject(ObjectTypes.sandboxSettings, `settings:${sandbox.id}`);
      await deps.runtime.deleteSandbox(sandbox);
      deps.sessions.cleanupSandbox(sandbox.id);
      return { deleted: true };
    },

    /** Idempotent: a STOPPED sandbox is answered as it is. */
    async stopSandbox(request) {
      const sandbox = await requireByName(deps.records, request.name);
      return { sandbox: await deps.runtime.stopSandbox(sandbox.id) };
    },

    /** Idempotent: a running (PROVISIONING, READY) sandbox is answered as it is. */
    async startSandbox(request) {
      const sandbox = await requireByName(deps.records, request.name);
      return { sandbox: await deps.runtime.startSandbox(sandbox.id) };
    },

    /**
     * A new sandbox copied from a READY one by the driver (disk and memory; the copy starts its
     * processes anew under its own identity). It inherits the source's spec with the policy it has
     * now, and its settings (`forkInheritance`). Refused before anything is stored when the driver
     * cannot fork (user errors are reported first, so they read the same on every driver).
     */
    async forkSandbox(request) {
      const source = await requireByName(deps.records, request.name);
      if (request.newName) validateSandboxName(request.newName);
      if (source.phase !== SandboxPhase.READY) {
        throw new OpenShellError(
          "failed_precondition",
          `sandbox '${source.name}' is ${phaseName(source.phase)}; only a READY sandbox can be forked: ${
            source.phase === SandboxPhase.STOPPED ? "start it first" : "wait until it is READY"
          }`,
        );
      }
      const name = request.newName || (await freeGeneratedName(deps.records));
      if (await deps.records.getByName(name)) {
        throw new OpenShellError("already_exists", `sandbox '${name}' already exists`);
      }
      await deps.runtime.requireForkSupport();

      const { spec, settings } = forkInheritance({
        spec: source.spec,
        latestRevision: await deps.store.latestPolicyRevision(source.id),
        inForceRevision: source.currentPolicyVersion
          ? await deps.store.getPolicyRevision(source.id, source.currentPolicyVersion)
          : undefined,
        settings: await settingsRecords.sandbox(source.id),
      });
      await requireProviders(deps.store, spec);
      const sandbox = create(SandboxSchema, {
        id: randomUUID(),
        name,
        namespace: deps.namespace,
        spec,
        phase: SandboxPhase.PROVISIONING,
      });
      await deps.runtime.validateCreate(sandbox);
      // Before the driver starts the copy: its supervisor reads them at once.
      if (settings) await settingsRecords.saveSandbox(sandbox.id, settings);
      try {
        return { sandbox: await deps.runtime.forkSandbox(sandbox, source) };
      } catch (error) {
        await deps.store.deleteObject(ObjectTypes.sandboxSettings, sandboxSettingsId(sandbox.id));
        throw error;
      }
    },
  };
}

function clampLimit(raw: number): number {
  if (raw === 0) return LIST_DEFAULT_LIMIT;
  return Math.min(raw, LIST_MAX_LIMIT);
}

async function requireByName(records: SandboxRecords, name: string): Promise<Sandbox> {
  if (!name) throw new OpenShellError("invalid_argument", "name is required");
  const sandbox = await records.getByName(name);
  if (!sandbox) throw sandboxNotFound(name);
  return sandbox;
}

export function sandboxNotFound(name: string): OpenShellError {
  return new OpenShellError(
    "not_found",
    `sandbox '${name}' not found; 'openshell sandbox list' shows the sandboxes that exist`,
  );
}

async function requireProviders(store: Store, spec: SandboxSpec): Promise<void> {
  for (const name of spec.providers) {
    if (!(await store.getObjectByName(ObjectTypes.provider, name))) {
      throw new OpenShellError("failed_precondition", `provider '${name}' not found`);
    }
  }
}

async function freeGeneratedName(records: SandboxRecords): Promise<string> {
  for (let attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
    const name = generateSandboxName();
    if (!(await records.getByName(name))) return name;
  }
  return randomLetters(6);
}

async function deleteSshSessionsOf(store: Store, sandboxId: string): Promise<void> {
  const sessions = await store.listObjects(ObjectTypes.sshSession, { limit: 100_000, offset: 0 });
  for (const row of sessions) {
    if (fromBinary(SshSessionSchema, row.payload).sandboxId === sandboxId) {
      await store.deleteObject(ObjectTypes.sshSession, row.id);
    }
  }
}
