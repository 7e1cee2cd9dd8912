/**
 * What the gateway persists, independent of the database behind it. Every method is async so a
 * networked database (Postgres) can implement the same interface.
 */
export const ObjectTypes = {
  sandbox: "sandbox",
  sshSession: "ssh_session",
  provider: "provider",
  gatewaySettings: "gateway_settings",
  sandboxSettings: "sandbox_settings",
  secret: "secret",
} as const;

export type ObjectType = (typeof ObjectTypes)[keyof typeof ObjectTypes];

export interface StoredObject {
  type: ObjectType;
  id: string;
  name: string;
  payload: Uint8Array;
  createdAtMs: number;
  updatedAtMs: number;
}

export interface Page {
  limit: number;
  offset: number;
}

export type PolicyRevisionStatus = "pending" | "loaded" | "failed" | "superseded";

export interface PolicyRevisionRecord {
  id: string;
  sandboxId: string;
  version: number;
  policyPayload: Uint8Array;
  policyHash: string;
  status: PolicyRevisionStatus;
  loadError: string | undefined;
  createdAtMs: number;
  loadedAtMs: number | undefined;
}

export interface Store {
  /** Inserts a new object; fails with already_exists when the id or (type, name) is taken. */
  insertObject(object: StoredObject): Promise<void>;
  /** Replaces the payload of an existing object; returns false when it does not exist. */
  updateObject(type: ObjectType, id: string, payload: Uint8Array, updatedAtMs: number): Promise<boolean>;
  /** Inserts or replaces by id. */
  upsertObject(object: StoredObject): Promise<void>;
  getObject(type: ObjectType, id: string): Promise<StoredObject | undefined>;
  getObjectByName(type: ObjectType, name: string): Promise<StoredObject | undefined>;
  /** Ordered by creation time, then name. */
  listObjects(type: ObjectType, page: Page): Promise<StoredObject[]>;
  countObjects(type: ObjectType): Promise<number>;
  deleteObject(type: ObjectType, id: string): Promise<boolean>;

  insertPolicyRevision(revision: PolicyRevisionRecord): Promise<void>;
  getPolicyRevision(sandboxId: string, version: number): Promise<PolicyRevisionRecord | undefined>;
  latestPolicyRevision(sandboxId: string): Promise<PolicyRevisionRecord | undefined>;
  /** Newest first. */
  listPolicyRevisions(sandboxId: string, page: Page): Promise<PolicyRevisionRecord[]>;
  updatePolicyRevisionStatus(
    sandboxId: string,
    version: number,
    status: PolicyRevisionStatus,
    fields: { loadError?: string; loadedAtMs?: number },
  ): Promise<boolean>;
  /** Marks the pending and loaded revisions older than `beforeVersion` superseded; returns how many. */
  supersedeOlderPolicyRevisions(sandboxId: string, beforeVersion: number): Promise<number>;
  deletePolicyRevisions(sandboxId: string): Promise<number>;

  /** Records that a user stopped the sandbox; kept (across restarts) until cleared. */
  setSandboxStopIntent(sandboxId: string, stoppedAtMs: number): Promise<void>;
  /** Returns false when there was none. */
  clearSandboxStopIntent(sandboxId: string): Promise<boolean>;
  hasSandboxStopIntent(sandboxId: string): Promise<boolean>;
  /** Ids of every sandbox a user stopped. */
  listSandboxStopIntents(): Promise<string[]>;

  /** Where the data lives, for logs (no credentials). */
  readonly description: string;
  close(): Promise<void>;
}
