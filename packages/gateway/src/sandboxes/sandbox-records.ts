import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Sandbox, SandboxSchema } from "@openshell/proto";
import { ObjectTypes, type Page, type Store, type StoredObject } from "../store/store.js";

/** Sandboxes in the store: protobuf payloads in `objects`, created_at_ms from the row. */
export class SandboxRecords {
  constructor(private readonly store: Store) {}

  async get(id: string): Promise<Sandbox | undefined> {
    return decode(await this.store.getObject(ObjectTypes.sandbox, id));
  }

  async getByName(name: string): Promise<Sandbox | undefined> {
    return decode(await this.store.getObjectByName(ObjectTypes.sandbox, name));
  }

  async list(page: Page): Promise<Sandbox[]> {
    const rows = await this.store.listObjects(ObjectTypes.sandbox, page);
    return rows.map((row) => decode(row) as Sandbox);
  }

  count(): Promise<number> {
    return this.store.countObjects(ObjectTypes.sandbox);
  }

  /** Fails with already_exists when the name is taken. */
  async insert(sandbox: Sandbox, nowMs = Date.now()): Promise<void> {
    await this.store.insertObject({
      type: ObjectTypes.sandbox,
      id: sandbox.id,
      name: sandbox.name,
      payload: toBinary(SandboxSchema, sandbox),
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
    });
    sandbox.createdAtMs = BigInt(nowMs);
  }

  update(sandbox: Sandbox, nowMs = Date.now()): Promise<boolean> {
    return this.store.updateObject(ObjectTypes.sandbox, sandbox.id, toBinary(SandboxSchema, sandbox), nowMs);
  }

  /** Removes the sandbox with its stop intent, policy revisions and sandbox-scoped settings. */
  async delete(id: string): Promise<boolean> {
    await this.store.clearSandboxStopIntent(id);
    await this.store.deletePolicyRevisions(id);
    await this.store.deleteObject(ObjectTypes.sandboxSettings, sandboxSettingsId(id));
    return this.store.deleteObject(ObjectTypes.sandbox, id);
  }

  /** The user stopped the sandbox: it stays stopped (across gateway restarts) until started. */
  markStopIntent(id: string, nowMs = Date.now()): Promise<void> {
    return this.store.setSandboxStopIntent(id, nowMs);
  }

  clearStopIntent(id: string): Promise<boolean> {
    return this.store.clearSandboxStopIntent(id);
  }

  hasStopIntent(id: string): Promise<boolean> {
    return this.store.hasSandboxStopIntent(id);
  }

  stopIntents(): Promise<string[]> {
    return this.store.listSandboxStopIntents();
  }
}

function decode(row: StoredObject | undefined): Sandbox | undefined {
  if (!row) return undefined;
  const sandbox = fromBinary(SandboxSchema, row.payload);
  sandbox.createdAtMs = BigInt(row.createdAtMs);
  return sandbox;
}

/** The `objects` id of a sandbox's settings (upstream's `settings:<sandbox id>`). */
export function sandboxSettingsId(sandboxId: string): string {
  return `settings:${sandboxId}`;
}
