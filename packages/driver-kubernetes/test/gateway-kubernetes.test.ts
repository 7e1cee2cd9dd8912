import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SandboxPhase } from "@openshell/proto";
import { FakeKubernetesApiServer, type KubeObject } from "@openshell/testing/fake-kubernetes/api-server";
import { FakeSandboxController } from "@openshell/testing/fake-kubernetes/sandbox-controller";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";

/**
 * The gateway with `--drivers kubernetes` against the FAKE API server and agent-sandbox controller
 * (no pods run: no supervisor connects, so sandboxes stay PROVISIONING): what the gateway hands the
 * driver reaches the cluster, and sandboxes outlive a gateway restart.
 */
const DRIVER_DIR = join(import.meta.dirname, "..", "dist");
const NS = "openshell";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startKubernetesGateway(stateDir: string, kubeconfig: string): Promise<RunningGateway> {
  const gw = await startGateway({
    stateDir,
    driver: { name: "kubernetes", dir: DRIVER_DIR },
    extraArgs: [
      "--sandbox-namespace",
      NS,
      "--sandbox-image",
      "example/sandbox:1",
      "--grpc-endpoint",
      "http://openshell.openshell.svc:8080",
    ],
    env: { OPENSHELL_KUBECONFIG: kubeconfig, OPENSHELL_SUPERVISOR_IMAGE: "example/openshell-gateway:1" },
    startTimeoutMs: 30_000,
  });
  cleanups.push(() => gw.stop("SIGKILL"));
  return gw;
}

describe("openshell-gateway --drivers kubernetes (fake API server)", () => {
  it("creates the Sandbox resource with the gateway's credential, keeps it across a gateway restart, deletes it", async () => {
    const api = new FakeKubernetesApiServer({ namespaces: [NS] });
    await api.start();
    cleanups.push(() => api.close());
    const controller = new FakeSandboxController(api);
    controller.start();
    cleanups.push(() => controller.stop());
    const stateDir = makeStateDir();
    cleanups.push(() => removeStateDir(stateDir));
    const kubeconfig = join(stateDir, "kubeconfig");
    writeFileSync(kubeconfig, api.kubeconfig());
    const get = (plural: string, name: string): KubeObject | undefined => api.get(api.type(plural), NS, name);

    const gw = await startKubernetesGateway(stateDir, kubeconfig);
    const created = await gw.grpc.createSandbox({
      name: "k8s-one",
      spec: {
        environment: { GREETING: "hi" },
        template: {
          nodeSelector: { pool: "sandboxes" },
          tolerations: [{ key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" }],
          imagePullSecrets: ["regcred"],
        },
      },
    });
    const id = created.sandbox?.id ?? "";
    const resource = get("sandboxes", "k8s-one") as KubeObject & {
      spec: {
        podTemplate: {
          spec: {
            containers: { image: string; env: { name: string; value?: string }[] }[];
            nodeSelector?: Record<string, string>;
            tolerations?: unknown[];
            imagePullSecrets?: unknown[];
          };
        };
      };
    };
    // The template's scheduling and pull settings reach the pod (the public API's fields, through
    // the gateway's platform config, to the driver's pod template).
    expect(resource.spec.podTemplate.spec.nodeSelector).toEqual({ pool: "sandboxes" });
    expect(resource.spec.podTemplate.spec.tolerations).toEqual([
      { key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" },
    ]);
    expect(resource.spec.podTemplate.spec.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(resource.metadata?.labels?.["openshell.ai/sandbox-id"]).toBe(id);
    const agent = resource.spec.podTemplate.spec.containers[0];
    expect(agent?.image).toBe("example/sandbox:1");
    expect(agent?.env).toEqual(
      expect.arrayContaining([
        { name: "GREETING", value: "hi" },
        { name: "OPENSHELL_ENDPOINT", value: "http://openshell.openshell.svc:8080" },
      ]),
    );
    const secret = get("secrets", "k8s-one-supervisor") as KubeObject & { data: Record<string, string> };
    expect(Buffer.from(secret.data.token ?? "", "base64").toString().length).toBeGreaterThan(16);
    await waitFor(() => get("pods", "k8s-one") !== undefined, 10_000, "no pod");
    expect((await gw.grpc.getSandbox({ name: "k8s-one" })).sandbox?.phase).toBe(SandboxPhase.PROVISIONING);

    // Why the pod waits reaches WatchSandbox (what `sandbox create` prints): a Kubernetes Event.
    const watch = new AbortController();
    const reasons: string[] = [];
    const following = (async () => {
      try {
        for await (const event of gw.grpc.watchSandbox(
          { id, followEvents: true },
          { signal: watch.signal },
        )) {
          if (event.payload.case === "event")
            reasons.push(`${event.payload.value.source}/${event.payload.value.reason}`);
        }
      } catch {
        // aborted
      }
    })();
    api.create(api.type("events"), {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "k8s-one.1", namespace: NS },
      involvedObject: { kind: "Pod", name: "k8s-one", namespace: NS },
      type: "Warning",
      reason: "FailedScheduling",
      message: "0/1 nodes are available: 1 Insufficient memory.",
      lastTimestamp: new Date().toISOString(),
    } as KubeObject);
    await waitFor(
      () => reasons.includes("kubernetes/FailedScheduling"),
      10_000,
      () => `events seen: ${reasons}`,
    );
    watch.abort();
    await following;

    // A gateway restart: the resource stays, the new gateway's driver adopts it.
    await gw.stop("SIGTERM");
    expect(get("sandboxes", "k8s-one")).toBeDefined();
    const again = await startKubernetesGateway(stateDir, kubeconfig);
    const listed = await again.grpc.listSandboxes({});
    expect(listed.sandboxes.map((s) => [s.name, s.id])).toEqual([["k8s-one", id]]);
    expect(get("sandboxes", "k8s-one")).toBeDefined();

    await again.grpc.deleteSandbox({ name: "k8s-one" });
    await waitFor(() => get("sandboxes", "k8s-one") === undefined, 10_000, "Sandbox resource not deleted");
    expect(get("secrets", "k8s-one-supervisor")).toBeUndefined();
    await waitFor(
      () => get("persistentvolumeclaims", "workspace-k8s-one") === undefined,
      10_000,
      "PVC not deleted",
    );
    await waitFor(
      async () => (await again.grpc.listSandboxes({})).sandboxes.length === 0,
      15_000,
      "the gateway still lists the deleted sandbox",
    );
  });
});
