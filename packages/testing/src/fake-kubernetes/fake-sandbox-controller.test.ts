/**
 * The fake agent-sandbox controller (tests only) behind the fake API server: a Sandbox becomes a Pod
 * and PVCs named as upstream names them; scaling to 0 removes the Pod and keeps the PVCs; status
 * follows the pod; deleting the Sandbox collects everything it owns.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeKubernetesApiServer } from "./fake-api-server.js";
import { FakeSandboxController, nameHash } from "./fake-sandbox-controller.js";

const NS = "openshell";
const SANDBOX = { group: "agents.x-k8s.io", version: "v1alpha1", namespace: NS, plural: "sandboxes" };

let server: FakeKubernetesApiServer;
let controller: FakeSandboxController;
let custom: CustomObjectsApi;
let core: CoreV1Api;

beforeEach(async () => {
  server = new FakeKubernetesApiServer({ namespaces: [NS] });
  await server.start();
  controller = new FakeSandboxController(server);
  controller.start();
  const config = new KubeConfig();
  config.loadFromString(server.kubeconfig({ namespace: NS }));
  custom = config.makeApiClient(CustomObjectsApi);
  core = config.makeApiClient(CoreV1Api);
});

afterEach(async () => {
  controller.stop();
  await server.close();
});

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("fake agent-sandbox controller", () => {
  it("creates the pod and PVCs, scales to zero keeping the PVC, reports Ready from the pod", async () => {
    await custom.createNamespacedCustomObject({
      ...SANDBOX,
      body: {
        apiVersion: "agents.x-k8s.io/v1alpha1",
        kind: "Sandbox",
        metadata: { name: "demo" },
        spec: {
          podTemplate: {
            metadata: { labels: { app: "x" } },
            spec: {
              containers: [
                {
                  name: "agent",
                  image: "busybox",
                  volumeMounts: [{ name: "workspace", mountPath: "/sandbox" }],
                },
              ],
            },
          },
          volumeClaimTemplates: [
            {
              metadata: { name: "workspace" },
              spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "2Gi" } } },
            },
          ],
        },
      },
    });
    const pod = await eventually(
      () => core.readNamespacedPod({ namespace: NS, name: "demo" }).catch(() => undefined),
      (value): value is V1Pod => value !== undefined,
      "the pod",
    );
    expect(pod?.metadata?.labels).toEqual({
      app: "x",
      "agents.x-k8s.io/sandbox-name-hash": nameHash("demo"),
    });
    expect(pod?.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "Sandbox",
      name: "demo",
      controller: true,
    });
    expect(pod?.spec?.volumes).toEqual([
      { name: "workspace", persistentVolumeClaim: { claimName: "workspace-demo" } },
    ]);
    const pvc = await core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: "workspace-demo" });
    expect(pvc.spec?.resources?.requests?.storage).toBe("2Gi");

    const notReady = (await custom.getNamespacedCustomObject({ ...SANDBOX, name: "demo" })) as {
      status: { conditions: { type: string; status: string; reason: string }[] };
    };
    expect(notReady.status.conditions[0]).toMatchObject({
      type: "Ready",
      status: "False",
      reason: "DependenciesNotReady",
    });

    // As the kubelet would: the pod runs and is ready.
    const current = server.get(server.type("pods"), NS, "demo");
    server.update(
      server.type("pods"),
      {
        ...current,
        status: {
          phase: "Running",
          conditions: [{ type: "Ready", status: "True" }],
          podIPs: [{ ip: "10.0.0.5" }],
        },
      },
      NS,
      "status",
    );
    await eventually(
      () =>
        custom.getNamespacedCustomObject({ ...SANDBOX, name: "demo" }) as Promise<{
          status?: { conditions?: { status: string }[] };
        }>,
      (value) => value.status?.conditions?.[0]?.status === "True",
      "Ready=True",
    );

    await custom.patchNamespacedCustomObject({
      ...SANDBOX,
      name: "demo",
      body: [{ op: "add", path: "/spec/replicas", value: 0 }],
    });
    await eventually(
      () => core.listNamespacedPod({ namespace: NS }),
      (list) => list.items.length === 0,
      "the pod to go",
    );
    const claims = await core.listNamespacedPersistentVolumeClaim({ namespace: NS });
    expect(claims.items.map((claim) => claim.metadata?.name)).toEqual(["workspace-demo"]);

    await custom.deleteNamespacedCustomObject({ ...SANDBOX, name: "demo" });
    await eventually(
      () => core.listNamespacedPersistentVolumeClaim({ namespace: NS }),
      (list) => list.items.length === 0,
      "the PVC to be collected",
    );
  });

  it("computes agent-sandbox's FNV-1a name hash", () => {
    // FNV-1a 32 of "" is the offset basis; of "a" is 0xe40c292c.
    expect(nameHash("")).toBe("811c9dc5");
    expect(nameHash("a")).toBe("e40c292c");
  });
});
