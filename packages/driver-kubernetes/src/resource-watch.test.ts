import { createLogger } from "@openshell/core";
import { describe, expect, it } from "vitest";
import { type KubeObject, ResourceWatch, type WatchFunction } from "./resource-watch.js";

interface Item extends KubeObject {
  metadata: { name: string; resourceVersion: string };
}

const item = (name: string, resourceVersion: string): Item => ({ metadata: { name, resourceVersion } });

/** A scripted API: each watch call takes the next script, which emits events and ends the watch. */
function scriptedApi(
  lists: Item[][],
  scripts: ((emit: (type: string, object: unknown) => void, done: (error: unknown) => void) => void)[],
) {
  const watchQueries: Record<string, unknown>[] = [];
  let listVersion = 100;
  const list = async () => {
    const items = lists.shift() ?? [];
    listVersion += 100;
    return { items, resourceVersion: String(listVersion) };
  };
  const watch: WatchFunction = async (_path, query, onEvent, done) => {
    watchQueries.push(query);
    const script = scripts.shift();
    if (script) setImmediate(() => script(onEvent, done));
    return { abort: () => {} };
  };
  return { list, watch, watchQueries };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

describe("ResourceWatch", () => {
  it("resumes an ended watch from the last resourceVersion it saw, with bookmarks on", async () => {
    const api = scriptedApi(
      [[item("a", "150")]],
      [
        (emit, done) => {
          emit("ADDED", item("b", "210"));
          emit("BOOKMARK", { metadata: { resourceVersion: "230" } });
          done(null);
        },
        (emit) => emit("DELETED", item("a", "240")),
      ],
    );
    const events: string[] = [];
    const syncs: string[][] = [];
    const watch = new ResourceWatch<Item>(
      {
        resource: "items",
        list: api.list,
        path: "/x",
        query: { labelSelector: "l=v" },
        onSync: (items) => syncs.push(items.map((i) => i.metadata.name)),
        onEvent: (type, i) => events.push(`${type} ${i.metadata.name}`),
      },
      api.watch,
      createLogger({ name: "test", level: "silent" }),
    );
    await watch.start();
    await until(() => events.length === 2);
    watch.stop();
    expect(syncs).toEqual([["a"]]);
    expect(events).toEqual(["ADDED b", "DELETED a"]);
    expect(api.watchQueries.map((q) => q.resourceVersion)).toEqual(["200", "230"]);
    expect(api.watchQueries[0]).toMatchObject({ labelSelector: "l=v", allowWatchBookmarks: true });
    expect(watch.stats).toMatchObject({ lists: 1, watches: 2, resumes: 1, relists: 0 });
  });

  it("lists again on 410 Gone (ERROR event or HTTP status) and hands over the full state, so a deletion meanwhile is seen", async () => {
    const api = scriptedApi(
      [[item("a", "150"), item("b", "160")], [item("b", "260")], [item("b", "360"), item("c", "370")]],
      [
        (emit, done) => {
          emit("ERROR", {
            kind: "Status",
            code: 410,
            reason: "Expired",
            message: "too old resource version",
          });
          done(null);
        },
        (_emit, done) => done(Object.assign(new Error("Gone"), { statusCode: 410 })),
        () => {},
      ],
    );
    const syncs: string[][] = [];
    const watch = new ResourceWatch<Item>(
      {
        resource: "items",
        list: api.list,
        path: "/x",
        query: {},
        onSync: (items) => syncs.push(items.map((i) => i.metadata.name)),
        onEvent: () => {},
      },
      api.watch,
      createLogger({ name: "test", level: "silent" }),
    );
    await watch.start();
    await until(() => syncs.length === 3);
    watch.stop();
    expect(syncs).toEqual([["a", "b"], ["b"], ["b", "c"]]);
    expect(api.watchQueries.map((q) => q.resourceVersion)).toEqual(["200", "300", "400"]);
    expect(watch.stats.relists).toBe(2);
  });

  it("retries a broken watch from where it was", async () => {
    const api = scriptedApi(
      [[]],
      [
        (emit, done) => {
          emit("MODIFIED", item("a", "205"));
          done(Object.assign(new TypeError("terminated"), { cause: { code: "ECONNRESET" } }));
        },
        () => {},
      ],
    );
    const watch = new ResourceWatch<Item>(
      { resource: "items", list: api.list, path: "/x", query: {}, onSync: () => {}, onEvent: () => {} },
      api.watch,
      createLogger({ name: "test", level: "silent" }),
    );
    await watch.start();
    await until(() => api.watchQueries.length === 2);
    watch.stop();
    expect(api.watchQueries.map((q) => q.resourceVersion)).toEqual(["200", "205"]);
  });
});
