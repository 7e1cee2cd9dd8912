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
import { policyRules } from "../policies/policy-rules.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
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
  "createSandbox" | "getSandbox" | "listSandboxes" | "deleteSandbox" | "stopSandbox" | "startSandbox"
>;

/** Sandbox CRUD with upstream's semantics (spec §2.5). */
export function createSandboxRpcs(deps: SandboxServiceDeps): SandboxRpcs {
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
      try {
        return { sandbox: await deps.runtime.createSandbox(sandbox) };
      } catch (error) {
        if (
          error instanceof OpenShellError &&
          error.code === "already_exists" &&
          error.message.includes(sandbox.name)
        ) {
          throw new OpenShellError("already_exists", `sandbox '${sandbox.name}' already exists`);
        }
        throw error;
      }
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
