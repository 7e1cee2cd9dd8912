import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "./sqlite-store.js";
import { ObjectTypes, type StoredObject } from "./store.js";

const object = (id: string, name: string, createdAtMs: number): StoredObject => ({
  type: ObjectTypes.sandbox,
  id,
  name,
  payload: new Uint8Array([1, 2, 3]),
  createdAtMs,
  updatedAtMs: createdAtMs,
});

describe("SqliteStore", () => {
  it("enforces unique names per type and keeps the first row", async () => {
    const store = SqliteStore.open(":memory:");
    await store.insertObject(object("a", "same", 1));
    await expect(store.insertObject(object("b", "same", 2))).rejects.toMatchObject({
      code: "already_exists",
    });
    await store.insertObject({ ...object("c", "same", 3), type: ObjectTypes.provider });
    expect((await store.getObjectByName(ObjectTypes.sandbox, "same"))?.id).toBe("a");
    await store.close();
  });

  it("lists by creation time then name, with paging", async () => {
    const store = SqliteStore.open(":memory:");
    await store.insertObject(object("3", "c", 20));
    await store.insertObject(object("1", "b", 10));
    await store.insertObject(object("2", "a", 10));
    const names = async (limit: number, offset: number) =>
      (await store.listObjects(ObjectTypes.sandbox, { limit, offset })).map((o) => o.name);
    expect(await names(10, 0)).toEqual(["a", "b", "c"]);
    expect(await names(2, 1)).toEqual(["b", "c"]);
    expect(await store.countObjects(ObjectTypes.sandbox)).toBe(3);
    await store.close();
  });

  it("updates, upserts and deletes", async () => {
    const store = SqliteStore.open(":memory:");
    await store.insertObject(object("a", "n", 1));
    expect(await store.updateObject(ObjectTypes.sandbox, "a", new Uint8Array([9]), 5)).toBe(true);
    expect(await store.updateObject(ObjectTypes.sandbox, "missing", new Uint8Array([9]), 5)).toBe(false);
    expect((await store.getObject(ObjectTypes.sandbox, "a"))?.payload).toEqual(new Uint8Array([9]));
    await store.upsertObject({ ...object("a", "n", 1), payload: new Uint8Array([7]) });
    expect((await store.getObject(ObjectTypes.sandbox, "a"))?.payload).toEqual(new Uint8Array([7]));
    expect(await store.deleteObject(ObjectTypes.sandbox, "a")).toBe(true);
    expect(await store.deleteObject(ObjectTypes.sandbox, "a")).toBe(false);
    await store.close();
  });

  it("keeps policy revisions per sandbox, newest first", async () => {
    const store = SqliteStore.open(":memory:");
    for (const version of [1, 2]) {
      await store.insertPolicyRevision({
        id: `r${version}`,
        sandboxId: "s",
        version,
        policyPayload: new Uint8Array([version]),
        policyHash: `h${version}`,
        status: "pending",
        loadError: undefined,
        createdAtMs: version,
        loadedAtMs: undefined,
      });
    }
    expect((await store.latestPolicyRevision("s"))?.version).toBe(2);
    await store.updatePolicyRevisionStatus("s", 2, "loaded", { loadedAtMs: 9 });
    expect(await store.getPolicyRevision("s", 2)).toMatchObject({ status: "loaded", loadedAtMs: 9 });
    expect((await store.listPolicyRevisions("s", { limit: 10, offset: 0 })).map((r) => r.version)).toEqual([
      2, 1,
    ]);
    await expect(
      store.insertPolicyRevision({ ...(await store.getPolicyRevision("s", 1))!, id: "dup" }),
    ).rejects.toMatchObject({ code: "aborted" });
    expect(await store.deletePolicyRevisions("s")).toBe(2);
    await store.close();
  });

  it("supersedes only the pending and loaded revisions older than a version, of that sandbox only", async () => {
    const store = SqliteStore.open(":memory:");
    const statuses = ["loaded", "failed", "pending", "pending"] as const;
    for (const [sandboxId, count] of [
      ["s", 4],
      ["t", 1],
    ] as const) {
      for (let version = 1; version <= count; version++) {
        await store.insertPolicyRevision({
          id: `${sandboxId}${version}`,
          sandboxId,
          version,
          policyPayload: new Uint8Array([version]),
          policyHash: `h${version}`,
          status: statuses[version - 1] ?? "pending",
          loadError: undefined,
          createdAtMs: version,
          loadedAtMs: undefined,
        });
      }
    }
    expect(await store.supersedeOlderPolicyRevisions("s", 4)).toBe(2);
    const page = await store.listPolicyRevisions("s", { limit: 10, offset: 0 });
    expect(page.map((r) => [r.version, r.status])).toEqual([
      [4, "pending"],
      [3, "superseded"],
      [2, "failed"],
      [1, "superseded"],
    ]);
    expect((await store.getPolicyRevision("t", 1))?.status).toBe("loaded");
    await store.close();
  });

  it("keeps a user's stop intents across reopening the file, until cleared", async () => {
    const dir = mkdtempSync(join(tmpdir(), "osstore-"));
    try {
      const path = join(dir, "gateway.db");
      const store = SqliteStore.open(path);
      await store.setSandboxStopIntent("b", 20);
      await store.setSandboxStopIntent("a", 10);
      await store.setSandboxStopIntent("b", 30);
      await store.close();
      const reopened = SqliteStore.open(path);
      expect(await reopened.listSandboxStopIntents()).toEqual(["a", "b"]);
      expect(await reopened.hasSandboxStopIntent("a")).toBe(true);
      expect(await reopened.clearSandboxStopIntent("a")).toBe(true);
      expect(await reopened.clearSandboxStopIntent("a")).toBe(false);
      expect(await reopened.hasSandboxStopIntent("a")).toBe(false);
      expect(await reopened.listSandboxStopIntents()).toEqual(["b"]);
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
