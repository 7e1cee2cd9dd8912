/**
 * The fake kubelet (tests only: no cluster can be had on these machines) realising Sandbox pods as
 * containers on its own private Docker daemon, driven through @kubernetes/client-node against the
 * fake API server and the fake agent-sandbox controller: init containers first, a PVC that outlives
 * the pod, env from a Secret, a secret volume, capabilities and user; ErrImagePull for an image the
 * daemon lacks; OOMKilled; cleanup on delete. Needs root and dockerd; uses its own run dir, data root
 * and address pool, never the default test daemon's.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerDaemon, startDockerDaemon } from "../src/docker-harness.js";
import { importBusyboxImage } from "../src/fake-kubernetes/busybox-image.js";
import { type FakeCluster, startFakeCluster } from "../src/fake-kubernetes/fake-cluster.js";
import type { FakeNodeAgent } from "../src/fake-kubernetes/node-agent.js";

const NS = "openshell";
const IMAGE = "fake-busybox:test";
const SANDBOX = { group: "agents.x-k8s.io", version: "v1alpha1", namespace: NS, plural: "sandboxes" };
const WORKSPACE_INIT =
  "if [ ! -f /workspace-pvc/.workspace-initialized ]; then if [ -d /sandbox ]; then tar -C /sandbox -cf - . | tar -C /workspace-pvc -xpf -; fi && touch /workspace-pvc/.workspace-initialized; fi";

let daemon: DockerDaemon;
let cluster: FakeCluster | undefined;
let agent: FakeNodeAgent;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let stateDir: string;

beforeAll(async () => {
  daemon = await startDockerDaemon({
    runDir: "/run/openshell-k8s-docker",
    dataRoot: "/var/lib/openshell-k8s-docker",
    addressPool: "base=10.214.0.0/16,size=24",
  });
  await importBusyboxImage(daemon, IMAGE, { "/sandbox/seed.txt": "from the image\n" });
  stateDir = mkdtempSync(join(tmpdir(), "fake-node-"));
  cluster = await startFakeCluster({ namespace: NS, docker: daemon, stateDir, backoffMs: 500 });
  agent = cluster.agent as FakeNodeAgent;
  const config = new KubeConfig();
  config.loadFromString(cluster.kubeconfig);
  custom = config.makeApiClient(CustomObjectsApi);
  core = config.makeApiClient(CoreV1Api);
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await daemon?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
}, 120_000);

async function eventually<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function readPod(name: string): Promise<V1Pod> {
  return core.readNamespacedPod({ namespace: NS, name });
}

async function podEvents(name: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({
    namespace: NS,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items.map((event) => `${event.reason}: ${event.message}`);
}

async function execIn(pod: V1Pod, container: string, script: string): Promise<string> {
  const id = pod.status?.containerStatuses
    ?.find((status) => status.name === container)
    ?.containerID?.replace("docker://", "");
  if (!id) throw new Error(`no container ${container} in ${JSON.stringify(pod.status)}`);
  return (await daemon.docker(["exec", id, "sh", "-c", script])).stdout;
}

function sandbox(name: string, image: string, extra: Record<string, unknown> = {}): object {
  return {
    apiVersion: "agents.x-k8s.io/v1alpha1",
    kind: "Sandbox",
    metadata: { name },
    spec: {
      podTemplate: {
        spec: {
          initContainers: [
            {
              name: "workspace-init",
              image,
              command: ["sh", "-c", WORKSPACE_INIT],
              securityContext: { runAsUser: 0 },
              volumeMounts: [{ name: "workspace", mountPath: "/workspace-pvc" }],
            },
            {
              name: "copy-bin",
              image,
              command: ["sh", "-c"],
              args: ["echo copied > /bin-out/marker"],
              volumeMounts: [{ name: "supervisor-bin", mountPath: "/bin-out" }],
            },
          ],
          containers: [
            {
              name: "agent",
              image,
              command: ["sleep", "1000"],
              env: [
                { name: "PLAIN", value: "plain-value" },
                { name: "FROM_SECRET", valueFrom: { secretKeyRef: { name: `${name}-cred`, key: "token" } } },
              ],
              securityContext: { capabilities: { add: ["NET_ADMIN", "SYS_ADMIN"] }, runAsUser: 0 },
              volumeMounts: [
                { name: "workspace", mountPath: "/sandbox" },
                { name: "supervisor-bin", mountPath: "/opt/openshell/bin", readOnly: true },
                { name: "tls", mountPath: "/etc/openshell-tls/client", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "supervisor-bin", emptyDir: {} },
            { name: "tls", secret: { secretName: `${name}-cred`, defaultMode: 256 } },
          ],
          ...extra,
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: "workspace" },
          spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "2Gi" } } },
        },
      ],
    },
  };
}

describe("fake node agent on a private Docker daemon", () => {
  it("runs init containers then the agent, keeps the PVC across scale to 0 and back, cleans up on delete", async () => {
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: "demo-cred" },
        data: {
          token: Buffer.from("s3cret").toString("base64"),
          "ca.crt": Buffer.from("CA").toString("base64"),
        },
      },
    });
    await custom.createNamespacedCustomObject({ ...SANDBOX, body: sandbox("demo", IMAGE) });
    let pod = await eventually(
      () => readPod("demo"),
      (value) => value.status?.phase === "Running",
      "the pod to run",
    );
    expect(pod.spec?.nodeName).toBe("fake-node");
    expect(pod.status?.initContainerStatuses?.map((status) => status.state?.terminated?.reason)).toEqual([
      "Completed",
      "Completed",
    ]);
    expect(
      await execIn(
        pod,
        "agent",
        "cat /sandbox/seed.txt /opt/openshell/bin/marker; ls -a /sandbox | sort | tr '\\n' ' '",
      ),
    ).toBe("from the image\ncopied\n. .. .workspace-initialized seed.txt ");
    expect(
      await execIn(
        pod,
        "agent",
        'echo "$PLAIN $FROM_SECRET"; id -u; stat -c %a /etc/openshell-tls/client/token',
      ),
    ).toBe("plain-value s3cret\n0\n400\n");
    // CAP_NET_ADMIN is bit 12, CAP_SYS_ADMIN bit 21.
    const capEff = BigInt(
      `0x${(await execIn(pod, "agent", "grep CapEff /proc/self/status")).split(/\s+/)[1]}`,
    );
    expect((capEff >> 12n) & 1n).toBe(1n);
    expect((capEff >> 21n) & 1n).toBe(1n);
    expect(await execIn(pod, "agent", "grep -c host.openshell.internal /etc/hosts")).toBe("1\n");
    const events = await podEvents("demo");
    expect(events).toEqual(
      expect.arrayContaining([
        "Scheduled: Successfully assigned openshell/demo to fake-node",
        `Pulled: Container image "${IMAGE}" already present on machine`,
        "Created: Created container: workspace-init",
        "Started: Started container agent",
      ]),
    );

    await execIn(pod, "agent", "echo mine > /sandbox/mine.txt && rm /sandbox/seed.txt");
    const firstUid = pod.metadata?.uid;
    await custom.patchNamespacedCustomObject({
      ...SANDBOX,
      name: "demo",
      body: [{ op: "add", path: "/spec/replicas", value: 0 }],
    });
    await eventually(
      async () =>
        (
          await daemon.docker([
            "ps",
            "-aq",
            "--filter",
            `label=fake-kubelet.openshell.test/pod-uid=${firstUid}`,
          ])
        ).stdout,
      (out) => out.trim() === "",
      "the pod's containers to go",
    );
    await custom.patchNamespacedCustomObject({
      ...SANDBOX,
      name: "demo",
      body: [{ op: "replace", path: "/spec/replicas", value: 1 }],
    });
    pod = await eventually(
      () => readPod("demo"),
      (value) => value.status?.phase === "Running" && value.metadata?.uid !== firstUid,
      "a new pod to run",
    );
    // The sentinel kept workspace-init from seeding again: the user's changes are intact.
    expect(await execIn(pod, "agent", "ls /sandbox | sort | tr '\\n' ' '")).toBe("mine.txt ");

    const claim = await core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: "workspace-demo" });
    const volume = agent.claimVolumeName(String(claim.metadata?.uid));
    await custom.deleteNamespacedCustomObject({ ...SANDBOX, name: "demo" });
    await eventually(
      async () => (await daemon.docker(["volume", "ls", "-q"])).stdout,
      (out) => !out.includes(volume) && !out.includes("fake-emptydir-"),
      "the PVC volume and emptyDir to go",
    );
    expect(
      (
        await daemon.docker([
          "ps",
          "-aq",
          "--filter",
          `label=fake-kubelet.openshell.test/pod-uid=${pod.metadata?.uid}`,
        ])
      ).stdout.trim(),
    ).toBe("");
  });

  it("reports ErrImagePull then ImagePullBackOff with events for an image the daemon lacks", async () => {
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "nopull-cred" }, data: { token: "" } },
    });
    await custom.createNamespacedCustomObject({
      ...SANDBOX,
      body: sandbox("nopull", "example.invalid/missing:1"),
    });
    const pod = await eventually(
      () => readPod("nopull"),
      (value) => value.status?.containerStatuses?.[0]?.state?.waiting?.reason === "ImagePullBackOff",
      "ImagePullBackOff",
    );
    expect(pod.status?.phase).toBe("Pending");
    const events = await podEvents("nopull");
    expect(events).toEqual(
      expect.arrayContaining([
        'Pulling: Pulling image "example.invalid/missing:1"',
        "Failed: Error: ErrImagePull",
        'BackOff: Back-off pulling image "example.invalid/missing:1"',
      ]),
    );
    await custom.deleteNamespacedCustomObject({ ...SANDBOX, name: "nopull" });
  });

  it("lets a pod reach the host as host.openshell.internal (where a gateway listens for supervisors)", async () => {
    // The pod network's gateway address is the host's end of the bridge: a gateway bound there (or
    // on 0.0.0.0) is reachable from pods, one bound to 127.0.0.1 is not.
    const listener = createServer((socket) => socket.end("hello from the host\n"));
    await new Promise<void>((resolve) => listener.listen(0, agent.hostGatewayIp, resolve));
    const port = (listener.address() as { port: number }).port;
    try {
      await core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name: "dialer" },
          spec: {
            restartPolicy: "Never",
            containers: [
              {
                name: "dial",
                image: IMAGE,
                command: ["sh", "-c", `nc host.openshell.internal ${port} </dev/null`],
              },
            ],
          },
        },
      });
      const pod = await eventually(
        () => readPod("dialer"),
        (value) => value.status?.phase === "Succeeded",
        "the dial to succeed",
      );
      const id = pod.status?.containerStatuses?.[0]?.containerID?.replace("docker://", "") as string;
      expect((await daemon.docker(["logs", id])).stdout).toBe("hello from the host\n");
      await core.deleteNamespacedPod({ namespace: NS, name: "dialer" });
    } finally {
      listener.close();
    }
  });

  it("restarts a crashing container with BackOff and keeps only its newest dead container", async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: "crasher" },
        spec: { containers: [{ name: "crash", image: IMAGE, command: ["sh", "-c", "exit 3"] }] },
      },
    });
    const pod = await eventually(
      () => readPod("crasher"),
      (value) => (value.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 3,
      "three restarts",
      60_000,
    );
    expect(pod.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(3);
    expect(await podEvents("crasher")).toEqual(
      expect.arrayContaining([expect.stringMatching(/^BackOff: Back-off restarting failed container crash/)]),
    );
    // The current attempt and one dead one, not one container per restart (a restart briefly has a
    // third until the oldest is removed).
    await eventually(
      async () => (await daemon.docker(["ps", "-aq", "--filter", "name=k8s_crash_crasher_"])).stdout,
      (ids) => ids.split("\n").filter(Boolean).length <= 2,
      "at most two containers of the crashing one",
      10_000,
    );
    await core.deleteNamespacedPod({ namespace: NS, name: "crasher" });
  });

  it("reports OOMKilled for a container over its memory limit", async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: "hog" },
        spec: {
          restartPolicy: "Never",
          containers: [
            {
              name: "hog",
              image: IMAGE,
              command: ["sh", "-c", "head -c 200m /dev/zero | tail"],
              resources: { limits: { memory: "16Mi" } },
            },
          ],
        },
      },
    });
    const pod = await eventually(
      () => readPod("hog"),
      (value) => value.status?.phase === "Failed",
      "the pod to fail",
    );
    expect(pod.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      reason: "OOMKilled",
      exitCode: 137,
    });
    await core.deleteNamespacedPod({ namespace: NS, name: "hog" });
  });
});
