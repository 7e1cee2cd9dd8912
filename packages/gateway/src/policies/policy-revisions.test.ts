import { create } from "@bufbuild/protobuf";
import { PolicyStatus, sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../store/sqlite-store.js";
import { MERGE_RETRY_LIMIT, revisionToProto, writeNextRevision } from "./policy-revisions.js";

const policy = (version: number) => create(sandboxv1.SandboxPolicySchema, { version });

describe("writeNextRevision", () => {
  it("writes the next version and supersedes the older pending and loaded ones", async () => {
    const store = SqliteStore.open(":memory:");
    const first = await writeNextRevision(
      store,
      "s",
      "loaded",
      () => ({ policy: policy(1), hash: "h1" }),
      () => 5,
    );
    expect(first).toEqual({ version: 1, hash: "h1", created: true });
    expect(await store.getPolicyRevision("s", 1)).toMatchObject({
      status: "loaded",
      loadedAtMs: 5,
      createdAtMs: 5,
    });
    const second = await writeNextRevision(store, "s", "pending", (latest) => {
      expect(latest?.version).toBe(1);
      return { policy: policy(2), hash: "h2" };
    });
    expect(second).toMatchObject({ version: 2, created: true });
    expect((await store.getPolicyRevision("s", 1))?.status).toBe("superseded");
    expect((await store.getPolicyRevision("s", 2))?.loadedAtMs).toBeUndefined();
    expect(await writeNextRevision(store, "s", "pending", () => ({ unchanged: 2, hash: "h2" }))).toEqual({
      version: 2,
      hash: "h2",
      created: false,
    });
    await store.close();
  });

  it("recomputes against the new latest when another writer took the version, and gives up with ABORTED", async () => {
    const store = SqliteStore.open(":memory:");
    let calls = 0;
    const raced = await writeNextRevision(store, "s", "pending", (latest) => {
      calls++;
      if (calls === 1) {
        // Another writer lands version 1 between our read and our insert.
        void store.insertPolicyRevision({
          id: "other",
          sandboxId: "s",
          version: 1,
          policyPayload: new Uint8Array(),
          policyHash: "theirs",
          status: "pending",
          loadError: undefined,
          createdAtMs: 1,
          loadedAtMs: undefined,
        });
      }
      return { policy: policy(latest ? 2 : 1), hash: `mine-after-${latest?.policyHash ?? "none"}` };
    });
    expect(calls).toBe(2);
    expect(raced).toMatchObject({ version: 2, hash: "mine-after-theirs", created: true });

    let attempts = 0;
    const hopeless = writeNextRevision(store, "s", "pending", (latest) => {
      attempts++;
      void store.insertPolicyRevision({
        id: `other-${attempts}`,
        sandboxId: "s",
        version: (latest?.version ?? 0) + 1,
        policyPayload: new Uint8Array(),
        policyHash: "theirs",
        status: "pending",
        loadError: undefined,
        createdAtMs: 1,
        loadedAtMs: undefined,
      });
      return { policy: policy(9), hash: "never" };
    });
    await expect(hopeless).rejects.toMatchObject({ code: "aborted" });
    expect(attempts).toBe(MERGE_RETRY_LIMIT);
    await store.close();
  });

  it("puts a revision on the wire with its status, and the policy only when asked", async () => {
    const store = SqliteStore.open(":memory:");
    await writeNextRevision(
      store,
      "s",
      "loaded",
      () => ({ policy: policy(7), hash: "h" }),
      () => 9,
    );
    const record = (await store.latestPolicyRevision("s"))!;
    expect(revisionToProto(record, true)).toMatchObject({
      version: 1,
      policyHash: "h",
      status: PolicyStatus.LOADED,
      loadError: "",
      createdAtMs: 9n,
      loadedAtMs: 9n,
      policy: { version: 7 },
    });
    expect(revisionToProto(record, false).policy).toBeUndefined();
    await store.close();
  });
});
