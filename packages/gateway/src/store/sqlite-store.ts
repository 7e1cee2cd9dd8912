import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { OpenShellError } from "@openshell/core";
import Database from "better-sqlite3";
import { and, asc, count, desc, eq, inArray, lt } from "drizzle-orm";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { findMigrationsFolder } from "./migrations-folder.js";
import { objects, sandboxPolicies, sandboxStopIntents } from "./schema.js";
import type {
  ObjectType,
  Page,
  PolicyRevisionRecord,
  PolicyRevisionStatus,
  Store,
  StoredObject,
} from "./store.js";

/** The embedded store: one SQLite file in WAL mode (or memory), schema migrated at open. */
export class SqliteStore implements Store {
  readonly description: string;

  private constructor(
    private readonly sqlite: Database.Database,
    private readonly db: BetterSQLite3Database,
    description: string,
  ) {
    this.description = description;
  }

  /** `path` is a file path or ":memory:". */
  static open(path: string): SqliteStore {
    const inMemory = path === ":memory:" || path === "";
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    let sqlite: Database.Database;
    if (!inMemory) assertSqliteLoads();
    try {
      sqlite = new Database(inMemory ? ":memory:" : path);
    } catch (error) {
      throw new OpenShellError(
        "unavailable",
        `cannot open SQLite database '${path}': ${(error as Error).message}. Check that the directory exists and is writable.`,
        { cause: error },
      );
    }
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("busy_timeout = 5000");
    sqlite.pragma("foreign_keys = ON");
    const db = drizzle(sqlite);
    try {
      migrate(db, { migrationsFolder: findMigrationsFolder() });
    } catch (error) {
      sqlite.close();
      throw new OpenShellError(
        "internal",
        `migrating the database '${path}' failed: ${(error as Error).message}. Was it written by a newer gateway?`,
        { cause: error },
      );
    }
    return new SqliteStore(sqlite, db, inMemory ? "sqlite (in memory)" : `sqlite ${path}`);
  }

  async insertObject(object: StoredObject): Promise<void> {
    try {
      this.db.insert(objects).values(toRow(object)).run();
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new OpenShellError("already_exists", `${object.type} '${object.name}' already exists`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  async updateObject(
    type: ObjectType,
    id: string,
    payload: Uint8Array,
    updatedAtMs: number,
  ): Promise<boolean> {
    const result = this.db
      .update(objects)
      .set({ payload: Buffer.from(payload), updatedAtMs })
      .where(and(eq(objects.objectType, type), eq(objects.id, id)))
      .run();
    return result.changes > 0;
  }

  async upsertObject(object: StoredObject): Promise<void> {
    const row = toRow(object);
    this.db
      .insert(objects)
      .values(row)
      .onConflictDoUpdate({
        target: objects.id,
        set: { payload: row.payload, updatedAtMs: row.updatedAtMs, name: row.name },
        setWhere: eq(objects.objectType, object.type),
      })
      .run();
  }

  async getObject(type: ObjectType, id: string): Promise<StoredObject | undefined> {
    const row = this.db
      .select()
      .from(objects)
      .where(and(eq(objects.objectType, type), eq(objects.id, id)))
      .get();
    return row && fromRow(row);
  }

  async getObjectByName(type: ObjectType, name: string): Promise<StoredObject | undefined> {
    const row = this.db
      .select()
      .from(objects)
      .where(and(eq(objects.objectType, type), eq(objects.name, name)))
      .get();
    return row && fromRow(row);
  }

  async listObjects(type: ObjectType, page: Page): Promise<StoredObject[]> {
    return this.db
      .select()
      .from(objects)
      .where(eq(objects.objectType, type))
      .orderBy(asc(objects.createdAtMs), asc(objects.name))
      .limit(page.limit)
      .offset(page.offset)
      .all()
      .map(fromRow);
  }

  async countObjects(type: ObjectType): Promise<number> {
    const row = this.db.select({ n: count() }).from(objects).where(eq(objects.objectType, type)).get();
    return row?.n ?? 0;
  }

  async deleteObject(type: ObjectType, id: string): Promise<boolean> {
    const result = this.db
      .delete(objects)
      .where(and(eq(objects.objectType, type), eq(objects.id, id)))
      .run();
    return result.changes > 0;
  }

  async insertPolicyRevision(revision: PolicyRevisionRecord): Promise<void> {
    try {
      this.db
        .insert(sandboxPolicies)
        .values({
          ...revision,
          policyPayload: Buffer.from(revision.policyPayload),
          loadError: revision.loadError ?? null,
          loadedAtMs: revision.loadedAtMs ?? null,
        })
        .run();
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new OpenShellError(
          "aborted",
          `policy version ${revision.version} of ${revision.sandboxId} was written concurrently; retry`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  async getPolicyRevision(sandboxId: string, version: number): Promise<PolicyRevisionRecord | undefined> {
    const row = this.db
      .select()
      .from(sandboxPolicies)
      .where(and(eq(sandboxPolicies.sandboxId, sandboxId), eq(sandboxPolicies.version, version)))
      .get();
    return row && policyFromRow(row);
  }

  async latestPolicyRevision(sandboxId: string): Promise<PolicyRevisionRecord | undefined> {
    const row = this.db
      .select()
      .from(sandboxPolicies)
      .where(eq(sandboxPolicies.sandboxId, sandboxId))
      .orderBy(desc(sandboxPolicies.version))
      .limit(1)
      .get();
    return row && policyFromRow(row);
  }

  async listPolicyRevisions(sandboxId: string, page: Page): Promise<PolicyRevisionRecord[]> {
    return this.db
      .select()
      .from(sandboxPolicies)
      .where(eq(sandboxPolicies.sandboxId, sandboxId))
      .orderBy(desc(sandboxPolicies.version))
      .limit(page.limit)
      .offset(page.offset)
      .all()
      .map(policyFromRow);
  }

  async updatePolicyRevisionStatus(
    sandboxId: string,
    version: number,
    status: PolicyRevisionStatus,
    fields: { loadError?: string; loadedAtMs?: number },
  ): Promise<boolean> {
    const result = this.db
      .update(sandboxPolicies)
      .set({
        status,
        ...(fields.loadError !== undefined ? { loadError: fields.loadError } : {}),
        ...(fields.loadedAtMs !== undefined ? { loadedAtMs: fields.loadedAtMs } : {}),
      })
      .where(and(eq(sandboxPolicies.sandboxId, sandboxId), eq(sandboxPolicies.version, version)))
      .run();
    return result.changes > 0;
  }

  async supersedeOlderPolicyRevisions(sandboxId: string, beforeVersion: number): Promise<number> {
    return this.db
      .update(sandboxPolicies)
      .set({ status: "superseded" })
      .where(
        and(
          eq(sandboxPolicies.sandboxId, sandboxId),
          lt(sandboxPolicies.version, beforeVersion),
          inArray(sandboxPolicies.status, ["pending", "loaded"]),
        ),
      )
      .run().changes;
  }

  async deletePolicyRevisions(sandboxId: string): Promise<number> {
    return this.db.delete(sandboxPolicies).where(eq(sandboxPolicies.sandboxId, sandboxId)).run().changes;
  }

  async setSandboxStopIntent(sandboxId: string, stoppedAtMs: number): Promise<void> {
    this.db
      .insert(sandboxStopIntents)
      .values({ sandboxId, stoppedAtMs })
      .onConflictDoUpdate({ target: sandboxStopIntents.sandboxId, set: { stoppedAtMs } })
      .run();
  }

  async clearSandboxStopIntent(sandboxId: string): Promise<boolean> {
    return (
      this.db.delete(sandboxStopIntents).where(eq(sandboxStopIntents.sandboxId, sandboxId)).run().changes > 0
    );
  }

  async hasSandboxStopIntent(sandboxId: string): Promise<boolean> {
    return (
      this.db
        .select({ id: sandboxStopIntents.sandboxId })
        .from(sandboxStopIntents)
        .where(eq(sandboxStopIntents.sandboxId, sandboxId))
        .get() !== undefined
    );
  }

  async listSandboxStopIntents(): Promise<string[]> {
    return this.db
      .select({ id: sandboxStopIntents.sandboxId })
      .from(sandboxStopIntents)
      .orderBy(asc(sandboxStopIntents.stoppedAtMs))
      .all()
      .map((row) => row.id);
  }

  async close(): Promise<void> {
    if (this.sqlite.open) this.sqlite.close();
  }
}

type ObjectRow = typeof objects.$inferSelect;
type PolicyRow = typeof sandboxPolicies.$inferSelect;

function toRow(object: StoredObject): ObjectRow {
  return {
    objectType: object.type,
    id: object.id,
    name: object.name,
    payload: Buffer.from(object.payload),
    createdAtMs: object.createdAtMs,
    updatedAtMs: object.updatedAtMs,
  };
}

function fromRow(row: ObjectRow): StoredObject {
  return {
    type: row.objectType as ObjectType,
    id: row.id,
    name: row.name,
    payload: new Uint8Array(row.payload),
    createdAtMs: row.createdAtMs,
    updatedAtMs: row.updatedAtMs,
  };
}

function policyFromRow(row: PolicyRow): PolicyRevisionRecord {
  return {
    id: row.id,
    sandboxId: row.sandboxId,
    version: row.version,
    policyPayload: new Uint8Array(row.policyPayload),
    policyHash: row.policyHash,
    status: row.status as PolicyRevisionStatus,
    loadError: row.loadError ?? undefined,
    createdAtMs: row.createdAtMs,
    loadedAtMs: row.loadedAtMs ?? undefined,
  };
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string })?.code ?? (error as { cause?: { code?: string } })?.cause?.code;
  return typeof code === "string" && code.startsWith("SQLITE_CONSTRAINT");
}

/**
 * better-sqlite3 loads its native addon at the first `new Database()`: an in-memory database first
 * tells a broken install (an addon for another platform or Node, a missing file) apart from a bad
 * database path, and says how to fix it.
 */
function assertSqliteLoads(): void {
  try {
    new Database(":memory:").close();
  } catch (error) {
    throw new OpenShellError(
      "failed_precondition",
      `better-sqlite3's native addon does not load on Node ${process.version} (${process.platform}-${process.arch}): ${(error as Error).message}. Reinstall with this Node (npm install -g openshell): better-sqlite3 ships prebuilt binaries for Linux, macOS and Windows; elsewhere it builds with python3, make and g++`,
      { cause: error },
    );
  }
}
