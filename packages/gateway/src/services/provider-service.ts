import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { isEnvironmentName, OpenShellError } from "@openshell/core";
import { datamodel, type OpenShell } from "@openshell/proto";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import { mergeEntries, redacted, validateProvider } from "../providers/provider-validation.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { ObjectTypes, type Store } from "../store/store.js";
import { bearerToken } from "./bearer-token.js";

const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

type ProviderRpcs = Pick<
  ServiceImpl<typeof OpenShell>,
  | "createProvider"
  | "getProvider"
  | "listProviders"
  | "updateProvider"
  | "deleteProvider"
  | "getSandboxProviderEnvironment"
>;

/** Provider CRUD (credential bundles, redacted on the way out) and the supervisor's env lookup. */
export function createProviderRpcs(deps: {
  store: Store;
  records: SandboxRecords;
  credentials: SupervisorCredentials;
}): ProviderRpcs {
  const load = async (name: string): Promise<datamodel.Provider | undefined> => {
    const row = await deps.store.getObjectByName(ObjectTypes.provider, name);
    return row ? fromBinary(datamodel.ProviderSchema, row.payload) : undefined;
  };
  const required = async (name: string): Promise<datamodel.Provider> => {
    if (!name) throw new OpenShellError("invalid_argument", "name is required");
    const provider = await load(name);
    if (!provider) {
      throw new OpenShellError(
        "not_found",
        `provider '${name}' not found; 'openshell provider list' shows the providers that exist`,
      );
    }
    return provider;
  };

  return {
    async createProvider(request) {
      const input = request.provider;
      if (!input) throw new OpenShellError("invalid_argument", "provider is required");
      validateProvider(input);
      if (await load(input.name)) throw new OpenShellError("already_exists", "provider already exists");
      const provider = create(datamodel.ProviderSchema, { ...input, id: randomUUID() });
      const now = Date.now();
      try {
        await deps.store.insertObject({
          type: ObjectTypes.provider,
          id: provider.id,
          name: provider.name,
          payload: toBinary(datamodel.ProviderSchema, provider),
          createdAtMs: now,
          updatedAtMs: now,
        });
      } catch (error) {
        if (OpenShellError.from(error).code === "already_exists") {
          throw new OpenShellError("already_exists", "provider already exists");
        }
        throw error;
      }
      return { provider: redacted(provider) };
    },

    async getProvider(request) {
      return { provider: redacted(await required(request.name)) };
    },

    async listProviders(request) {
      const limit = Math.min(request.limit || DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const rows = await deps.store.listObjects(ObjectTypes.provider, { limit, offset: request.offset });
      return { providers: rows.map((row) => redacted(fromBinary(datamodel.ProviderSchema, row.payload))) };
    },

    async updateProvider(request) {
      const input = request.provider;
      if (!input) throw new OpenShellError("invalid_argument", "provider is required");
      const current = await required(input.name);
      if (input.type && input.type !== current.type) {
        throw new OpenShellError(
          "invalid_argument",
          "provider type cannot be changed; delete and recreate the provider",
        );
      }
      const next = create(datamodel.ProviderSchema, {
        ...current,
        credentials: mergeEntries(current.credentials, input.credentials),
        config: mergeEntries(current.config, input.config),
      });
      validateProvider(next);
      await deps.store.updateObject(
        ObjectTypes.provider,
        current.id,
        toBinary(datamodel.ProviderSchema, next),
        Date.now(),
      );
      return { provider: redacted(next) };
    },

    async deleteProvider(request) {
      if (!request.name) throw new OpenShellError("invalid_argument", "name is required");
      const row = await deps.store.getObjectByName(ObjectTypes.provider, request.name);
      if (!row) return { deleted: false };
      return { deleted: await deps.store.deleteObject(ObjectTypes.provider, row.id) };
    },

    /**
     * Credentials of the sandbox's providers, in order; the first provider wins a duplicate key. Real
     * secret values: only that sandbox's supervisor (its credential) may read them.
     */
    async getSandboxProviderEnvironment(request, context) {
      if (!request.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
      deps.credentials.authorize(bearerToken(context.requestHeader.get("authorization")), request.sandboxId);
      const sandbox = await deps.records.get(request.sandboxId);
      if (!sandbox) throw new OpenShellError("not_found", `sandbox ${request.sandboxId} not found`);
      const environment: Record<string, string> = {};
      for (const name of sandbox.spec?.providers ?? []) {
        const provider = await load(name);
        if (!provider) throw new OpenShellError("failed_precondition", `provider '${name}' not found`);
        for (const [key, value] of Object.entries(provider.credentials)) {
          if (isEnvironmentName(key) && !(key in environment)) environment[key] = value;
        }
      }
      return { environment };
    },
  };
}
