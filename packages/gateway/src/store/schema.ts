import { blob, index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** Generic object store: protobuf payloads keyed by id, unique by (object_type, name). */
export const objects = sqliteTable(
  "objects",
  {
    objectType: text("object_type").notNull(),
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    payload: blob("payload", { mode: "buffer" }).notNull(),
    createdAtMs: integer("created_at_ms").notNull(),
    updatedAtMs: integer("updated_at_ms").notNull(),
  },
  (table) => [
    uniqueIndex("objects_type_name_unique").on(table.objectType, table.name),
    index("objects_type_created").on(table.objectType, table.createdAtMs, table.name),
  ],
);

/** Policy revisions of a sandbox (or of the gateway, with sandbox_id "__global__"). */
export const sandboxPolicies = sqliteTable(
  "sandbox_policies",
  {
    id: text("id").primaryKey(),
    sandboxId: text("sandbox_id").notNull(),
    version: integer("version").notNull(),
    policyPayload: blob("policy_payload", { mode: "buffer" }).notNull(),
    policyHash: text("policy_hash").notNull(),
    status: text("status").notNull().default("pending"),
    loadError: text("load_error"),
    createdAtMs: integer("created_at_ms").notNull(),
    loadedAtMs: integer("loaded_at_ms"),
  },
  (table) => [
    uniqueIndex("sandbox_policies_sandbox_version_unique").on(table.sandboxId, table.version),
    index("sandbox_policies_sandbox_version_desc").on(table.sandboxId, table.version),
  ],
);

/**
 * Sandboxes a user stopped (`StopSandbox`): the gateway keeps them stopped, across its own restarts
 * too, until `StartSandbox` removes the row.
 */
export const sandboxStopIntents = sqliteTable("sandbox_stop_intents", {
  sandboxId: text("sandbox_id").primaryKey(),
  stoppedAtMs: integer("stopped_at_ms").notNull(),
});
