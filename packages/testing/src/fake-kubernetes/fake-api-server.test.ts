/**
 * The fake Kubernetes API server (tests only) driven by @kubernetes/client-node itself, so what the
 * driver's tests rely on (REST shapes, watch resumption, 410, Status objects, GC, 403) is checked
 * against the real client rather than assumed.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ApisApi,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeKubernetesApiServer } from "./fake-api-server.js";

const NS = "openshell";
const SANDBOX = { group: "agents.x-k8s.io", version: "v1alpha1", namespace: NS, plural: "sandboxes" };

let server: FakeKubernetesApiServer;
let config: KubeConfig;

beforeEach(async () => {
  server = new FakeKubernetesApiServer({ namespaces: ["default", NS], bookmarkIntervalMs: 200 });
  await server.start();
  config = new KubeConfig();
  config.loadFromString(server.kubeconfig({ namespace: NS }));
});

afterEach(async () => {
  await server.close();
});

function sandbox(name: string, labels: Record<string, string> = {}): object {
  return {
    apiVersion: "agents.x-k8s.io/v1alpha1",
    kind: "Sandbox",
    metadata: { name, labels: { "openshell.ai/managed-by": "openshell", ...labels } },
    spec: { replicas: 1, podTemplate: { spec: { containers: [{ name: "agent", image: "busybox" }] } } },
  };
}

/** The Status a client-node ApiException carries in its body. */
async function statusOf(promise: Promise<unknown>): Promise<{ code: number; body: Record<string, unknown> }> {
  try {
    await promise;
  } catch (error) {
    const e = error as { code: number; body: string | Record<string, unknown> };
    return { code: e.code, body: typeof e.body === "string" ? JSON.parse(e.body) : e.body };
  }
  throw new Error("expected the call to fail");
}

function waitUntil(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

describe("fake Kubernetes API server against @kubernetes/client-node", () => {
  it("serves discovery with the sandbox group, and a newer version when configured", async () => {
    const groups = await config.makeApiClient(ApisApi).getAPIVersions();
    expect(groups.groups.map((group) => group.name)).toEqual(["agents.x-k8s.io"]);
    expect(groups.groups[0]?.preferredVersion?.version).toBe("v1alpha1");

    const newer = new FakeKubernetesApiServer({ sandboxVersions: ["v1alpha1", "v1beta1"] });
    await newer.start();
    try {
      const newerConfig = new KubeConfig();
      newerConfig.loadFromString(newer.kubeconfig());
      const list = await newerConfig.makeApiClient(ApisApi).getAPIVersions();
      expect(list.groups[0]?.preferredVersion?.version).toBe("v1beta1");
      expect(list.groups[0]?.versions.map((v) => v.version)).toEqual(["v1beta1", "v1alpha1"]);
    } finally {
      await newer.close();
    }
  });

  it("creates, gets, lists by label, patches (JSON patch and merge patch) and updates sandboxes", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    const created = (await api.createNamespacedCustomObject({
      ...SANDBOX,
      body: sandbox("one", { team: "a" }),
    })) as KubernetesObject;
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.metadata?.namespace).toBe(NS);
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("two", { team: "b" }) });

    const byLabel = (await api.listNamespacedCustomObject({ ...SANDBOX, labelSelector: "team in (a)" })) as {
      items: KubernetesObject[];
      metadata: { resourceVersion: string };
    };
    expect(byLabel.items.map((item) => item.metadata?.name)).toEqual(["one"]);
    expect(Number(byLabel.metadata.resourceVersion)).toBe(server.currentResourceVersion);

    // client-node's default patch content type is JSON patch.
    const jsonPatched = (await api.patchNamespacedCustomObject({
      ...SANDBOX,
      name: "one",
      body: [{ op: "replace", path: "/spec/replicas", value: 0 }],
    })) as { spec: { replicas: number }; metadata: { generation: number } };
    expect(jsonPatched.spec.replicas).toBe(0);
    expect(jsonPatched.metadata.generation).toBe(2);
    expect(server.requests.at(-1)?.contentType).toBe("application/json-patch+json");

    const merged = (await api.patchNamespacedCustomObject(
      { ...SANDBOX, name: "one", body: { spec: { replicas: 1 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    )) as { spec: { replicas: number; podTemplate: unknown } };
    expect(merged.spec.replicas).toBe(1);
    expect(merged.spec.podTemplate).toBeTruthy();

    const current = (await api.getNamespacedCustomObject({ ...SANDBOX, name: "one" })) as KubernetesObject;
    const stale = structuredClone(current) as KubernetesObject & { spec: { replicas: number } };
    stale.spec.replicas = 0;
    await api.replaceNamespacedCustomObject({ ...SANDBOX, name: "one", body: stale });
    // The same (now stale) resourceVersion again: 409 Conflict in the apiserver's words.
    const refused = await statusOf(
      api.replaceNamespacedCustomObject({ ...SANDBOX, name: "one", body: stale }),
    );
    expect(refused.code).toBe(409);
    expect(refused.body).toMatchObject({ kind: "Status", status: "Failure", reason: "Conflict", code: 409 });
    expect(refused.body.message).toContain(
      'Operation cannot be fulfilled on sandboxes.agents.x-k8s.io "one"',
    );
  });

  it("answers errors with metav1.Status: NotFound, AlreadyExists, Invalid, missing namespace", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    const missing = await statusOf(api.getNamespacedCustomObject({ ...SANDBOX, name: "nope" }));
    expect(missing).toEqual({
      code: 404,
      body: {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: 'sandboxes.agents.x-k8s.io "nope" not found',
        reason: "NotFound",
        details: { name: "nope", group: "agents.x-k8s.io", kind: "sandboxes" },
        code: 404,
      },
    });
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("dup") });
    const duplicate = await statusOf(api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("dup") }));
    expect(duplicate.body).toMatchObject({ reason: "AlreadyExists", code: 409 });
    const bad = await statusOf(api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("Bad_Name") }));
    expect(bad.body).toMatchObject({ reason: "Invalid", code: 422, details: { kind: "Sandbox" } });
    const noNamespace = await statusOf(
      api.createNamespacedCustomObject({ ...SANDBOX, namespace: "elsewhere", body: sandbox("x") }),
    );
    expect(noNamespace.body).toMatchObject({
      reason: "NotFound",
      message: 'namespaces "elsewhere" not found',
    });
  });

  it("answers 403 like RBAC for a forbidden verb, and 404 everywhere once the CRD is gone", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    server.forbid("create", "sandboxes");
    const refused = await statusOf(api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("x") }));
    expect(refused.code).toBe(403);
    expect(refused.body).toMatchObject({ reason: "Forbidden", status: "Failure" });
    expect(refused.body.message).toBe(
      'sandboxes.agents.x-k8s.io is forbidden: User "system:serviceaccount:openshell:openshell" cannot create resource "sandboxes" in API group "agents.x-k8s.io" in the namespace "openshell"',
    );
    server.allow("create", "sandboxes");
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("x") });

    server.removeSandboxCrd();
    const gone = await statusOf(api.listNamespacedCustomObject(SANDBOX));
    expect(gone.body).toMatchObject({
      reason: "NotFound",
      message: "the server could not find the requested resource",
    });
    const groups = await config.makeApiClient(ApisApi).getAPIVersions();
    expect(groups.groups).toEqual([]);
  });

  it("garbage-collects owned secrets, pods and PVCs when their sandbox is deleted; Orphan keeps them", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    const core = config.makeApiClient(CoreV1Api);
    for (const name of ["owned", "kept"]) {
      const owner = (await api.createNamespacedCustomObject({
        ...SANDBOX,
        body: sandbox(name),
      })) as KubernetesObject;
      const ownerReferences = [
        {
          apiVersion: "agents.x-k8s.io/v1alpha1",
          kind: "Sandbox",
          name,
          uid: owner.metadata?.uid as string,
          controller: true,
        },
      ];
      await core.createNamespacedSecret({
        namespace: NS,
        body: { metadata: { name: `${name}-cred`, ownerReferences } },
      });
      await core.createNamespacedPersistentVolumeClaim({
        namespace: NS,
        body: {
          metadata: { name: `workspace-${name}`, ownerReferences },
          spec: { accessModes: ["ReadWriteOnce"] },
        },
      });
    }
    await core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name: "unowned" }, spec: {} },
    });

    const deleted = (await api.deleteNamespacedCustomObject({ ...SANDBOX, name: "owned" })) as Record<
      string,
      unknown
    >;
    expect(deleted).toMatchObject({ kind: "Status", status: "Success", details: { name: "owned" } });
    await api.deleteNamespacedCustomObject({ ...SANDBOX, name: "kept", propagationPolicy: "Orphan" });
    await waitUntil(
      () => server.get(server.type("secrets"), NS, "owned-cred") === undefined,
      "GC of owned-cred",
    );
    const pvcs = await core.listNamespacedPersistentVolumeClaim({ namespace: NS });
    expect(pvcs.items.map((pvc) => pvc.metadata?.name)).toEqual(["unowned", "workspace-kept"]);
    expect(pvcs.items[1]?.metadata?.ownerReferences).toEqual([]);
    const secrets = await core.listNamespacedSecret({ namespace: NS });
    expect(secrets.items.map((secret) => secret.metadata?.name)).toEqual(["kept-cred"]);
  });

  it("resumes a watch from its resourceVersion after a mid-stream break with no missed deletion", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("a") });
    const list = (await api.listNamespacedCustomObject(SANDBOX)) as { metadata: { resourceVersion: string } };
    const events: string[] = [];
    let lastVersion = list.metadata.resourceVersion;
    const path = `/apis/agents.x-k8s.io/v1alpha1/namespaces/${NS}/sandboxes`;
    const watch = new Watch(config);
    let ended: unknown = "running";
    const start = () =>
      watch.watch(
        path,
        { resourceVersion: lastVersion, allowWatchBookmarks: true },
        (type, object: KubernetesObject) => {
          lastVersion = object.metadata?.resourceVersion ?? lastVersion;
          if (type !== "BOOKMARK") events.push(`${type} ${object.metadata?.name}`);
        },
        (error) => {
          ended = error;
        },
      );
    await start();
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("b") });
    await waitUntil(() => events.length === 1, "ADDED b");
    await waitUntil(() => server.breakWatches() > 0, "a watch to break");
    await waitUntil(() => ended !== "running", "the watch to end");
    // While nobody watches: b deleted, c created.
    await api.deleteNamespacedCustomObject({ ...SANDBOX, name: "b" });
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("c") });
    ended = "running";
    const controller = await start();
    await waitUntil(() => events.length === 3, "the missed events replayed");
    expect(events).toEqual(["ADDED b", "DELETED b", "ADDED c"]);
    controller.abort();
  });

  it("sends a 410 Expired ERROR event for a compacted resourceVersion; ListWatch relists", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("a") });
    const old = server.currentResourceVersion;
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("b") });
    server.compact();
    const received: { type: string; object: Record<string, unknown> }[] = [];
    await new Promise<void>((resolve) => {
      void new Watch(config).watch(
        `/apis/agents.x-k8s.io/v1alpha1/namespaces/${NS}/sandboxes`,
        { resourceVersion: String(old) },
        (type, object) => received.push({ type, object }),
        () => resolve(),
      );
    });
    expect(received).toEqual([
      {
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: `too old resource version: ${old} (${server.currentResourceVersion})`,
          reason: "Expired",
          code: 410,
        },
      },
    ]);

    // An informer-style ListWatch whose watch breaks gracefully after compaction relists and
    // sees the deletion that happened meanwhile.
    const path = `/apis/agents.x-k8s.io/v1alpha1/namespaces/${NS}/sandboxes`;
    const informer = new ListWatch<KubernetesObject>(
      path,
      new Watch(config),
      async () => (await api.listNamespacedCustomObject(SANDBOX)) as never,
      false,
    );
    const deletions: string[] = [];
    informer.on("delete", (object) => deletions.push(object.metadata?.name ?? ""));
    await informer.start();
    expect(informer.list().map((object) => object.metadata?.name)).toEqual(["a", "b"]);
    await waitUntil(() => server.breakWatches({ abrupt: false }) > 0, "a watch to end");
    await api.deleteNamespacedCustomObject({ ...SANDBOX, name: "a" });
    server.compact();
    await waitUntil(() => deletions.includes("a"), "the relisted deletion of a", 10_000);
    await informer.stop();
  });

  it("lists and watches core objects with field selectors (events by involved object, nodes)", async () => {
    const core = config.makeApiClient(CoreV1Api);
    await core.createNode({
      body: { metadata: { name: "fake-node" }, status: { allocatable: { cpu: "2" } } },
    });
    await core.createNamespacedEvent({
      namespace: NS,
      body: { metadata: { name: "e1" }, involvedObject: { kind: "Pod", name: "one" }, reason: "Pulling" },
    });
    await core.createNamespacedEvent({
      namespace: NS,
      body: { metadata: { name: "e2" }, involvedObject: { kind: "Pod", name: "two" }, reason: "Pulled" },
    });
    const events = await core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: "involvedObject.name=one",
    });
    expect(events.items.map((event) => event.reason)).toEqual(["Pulling"]);
    const nodes = await core.listNode();
    expect(nodes.items.map((node) => node.metadata?.name)).toEqual(["fake-node"]);
    expect(nodes.kind).toBe("NodeList");
  });

  it("is unreachable while suspended and serves the same store on the same port after resume", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("a") });
    await server.suspend();
    await expect(api.listNamespacedCustomObject(SANDBOX)).rejects.toThrow(/ECONNREFUSED|fetch failed/);
    await server.resume();
    const list = (await api.listNamespacedCustomObject(SANDBOX)) as { items: KubernetesObject[] };
    expect(list.items.map((item) => item.metadata?.name)).toEqual(["a"]);
  });
  it("keeps status out of main-path writes and spec out of /status writes; finalizers hold a delete", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    const created = (await api.createNamespacedCustomObject({
      ...SANDBOX,
      body: { ...sandbox("s"), status: { conditions: [{ type: "Ready", status: "True" }] } },
    })) as Record<string, unknown>;
    expect(created.status).toBeUndefined();
    const withStatus = (await api.replaceNamespacedCustomObjectStatus({
      ...SANDBOX,
      name: "s",
      body: { ...created, spec: { replicas: 5 }, status: { phase: "x" } },
    })) as { spec: { replicas: number }; status: unknown };
    expect(withStatus.spec.replicas).toBe(1);
    expect(withStatus.status).toEqual({ phase: "x" });

    const finalized = (await api.patchNamespacedCustomObject({
      ...SANDBOX,
      name: "s",
      body: [{ op: "add", path: "/metadata/finalizers", value: ["test/hold"] }],
    })) as KubernetesObject;
    expect(finalized.metadata?.finalizers).toEqual(["test/hold"]);
    const deleting = (await api.deleteNamespacedCustomObject({ ...SANDBOX, name: "s" })) as KubernetesObject;
    expect(deleting.metadata?.deletionTimestamp).toBeTruthy();
    expect(server.get(server.type("sandboxes"), NS, "s")).toBeDefined();
    await api.patchNamespacedCustomObject({
      ...SANDBOX,
      name: "s",
      body: [{ op: "remove", path: "/metadata/finalizers" }],
    });
    expect(server.get(server.type("sandboxes"), NS, "s")).toBeUndefined();
  });

  it("sends DELETED when an object stops matching a watch's label selector", async () => {
    const api = config.makeApiClient(CustomObjectsApi);
    await api.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("l", { team: "a" }) });
    const events: string[] = [];
    const controller = await new Watch(config).watch(
      `/apis/agents.x-k8s.io/v1alpha1/namespaces/${NS}/sandboxes`,
      { labelSelector: "team=a" },
      (type, object: KubernetesObject) => events.push(`${type} ${object.metadata?.labels?.team}`),
      () => undefined,
    );
    await waitUntil(() => events.length === 1, "the initial ADDED");
    await api.patchNamespacedCustomObject(
      { ...SANDBOX, name: "l", body: { metadata: { labels: { team: "b" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await api.patchNamespacedCustomObject(
      { ...SANDBOX, name: "l", body: { metadata: { labels: { team: "a" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await waitUntil(() => events.length === 3, "DELETED then ADDED");
    expect(events).toEqual(["ADDED a", "DELETED b", "ADDED a"]);
    controller.abort();
  });

  it("answers a compacted watch with HTTP 410 when configured so", async () => {
    const strict = new FakeKubernetesApiServer({ expiredAsHttp: true });
    await strict.start();
    try {
      const strictConfig = new KubeConfig();
      strictConfig.loadFromString(strict.kubeconfig());
      strict.create(strict.type("pods"), { metadata: { name: "p" }, spec: {} }, "default");
      strict.compact();
      const error = await new Promise<unknown>((resolve) => {
        void new Watch(strictConfig).watch(
          "/api/v1/namespaces/default/pods",
          { resourceVersion: "1" },
          () => undefined,
          resolve,
        );
      });
      expect((error as { statusCode: number }).statusCode).toBe(410);
    } finally {
      await strict.close();
    }
  });

  it("serves an in-cluster client (service account files under a prefix, KUBERNETES_SERVICE_*)", async () => {
    const prefix = mkdtempSync(join(tmpdir(), "fake-sa-"));
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    try {
      Object.assign(process.env, server.writeInClusterFiles(prefix, NS));
      const inCluster = new KubeConfig();
      inCluster.loadFromCluster(prefix);
      const list = await inCluster.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: NS });
      expect(list.items).toEqual([]);
      expect(inCluster.getContextObject(inCluster.getCurrentContext())?.namespace).toBe(NS);
    } finally {
      for (const [key, value] of [
        ["KUBERNETES_SERVICE_HOST", saved.host],
        ["KUBERNETES_SERVICE_PORT", saved.port],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});
