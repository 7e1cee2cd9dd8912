import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectToDriver, type DriverConnection } from "@openshell/driver-sdk";
import type { compute } from "@openshell/proto";
import { FakeKubernetesApiServer, type KubeObject } from "@openshell/testing/fake-kubernetes/api-server";
import { FakeSandboxController } from "@openshell/testing/fake-kubernetes/sandbox-controller";
import { stopChild, waitFor } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";

/**
 * The built driver binary against the FAKE Kubernetes API server and agent-sandbox controller of
 * @openshell/testing (no cluster can be had here): the objects it makes, stop/start, delete,
 * adoption after a restart, watches that break or expire, and the start-up failures.
 */
const DRIVER = join(import.meta.dirname, "..", "dist", "openshell-driver-kubernetes.js");
const NS = "openshell";

interface Fixture {
  dir: string;
  api: FakeKubernetesApiServer;
  controller: FakeSandboxController;
  kubeconfig: string;
}

interface RunningDriver {
  child: ChildProcess;
  connection: DriverConnection;
  events: compute.WatchSandboxesEvent[];
  stderr: () => string;
  watchAbort: AbortController;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fixture(
  options: ConstructorParameters<typeof FakeKubernetesApiServer>[0] = {},
): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "osk8s-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const api = new FakeKubernetesApiServer({ namespaces: [NS], ...options });
  await api.start();
  cleanups.push(() => api.close());
  const controller = new FakeSandboxController(api);
  controller.start();
  cleanups.push(() => controller.stop());
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, api.kubeconfig());
  return { dir, api, controller, kubeconfig };
}

function driverArgs(f: Fixture, socket: string, extra: string[] = []): string[] {
  return [
    DRIVER,
    "--bind-socket",
    socket,
    "--state-dir",
    f.dir,
    "--log-level",
    "warn",
    "--kubeconfig",
    f.kubeconfig,
    "--namespace",
    NS,
    "--sandbox-image",
    "example/sandbox:1",
    "--supervisor-image",
    "example/openshell-gateway:1",
    "--openshell-endpoint",
    "http://openshell.openshell.svc:8080",
    ...extra,
  ];
}

async function startDriver(f: Fixture, extra: string[] = []): Promise<RunningDriver> {
  const socket = join(f.dir, `d${cleanups.length}.sock`);
  const child = spawn(process.execPath, driverArgs(f, socket, extra), { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  cleanups.push(async () => {
    await stopChild(child, "SIGTERM");
  });
  await waitFor(
    () => existsSync(socket),
    20_000,
    () => `driver did not serve: ${stderr}`,
    child,
  );
  // The socket file exists from bind(), a moment before listen(): wait until a call is answered.
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const probe = net.connect(socket, () => {
          probe.destroy();
          resolve(true);
        });
        probe.on("error", () => resolve(false));
      }),
    20_000,
    () => `driver did not accept connections: ${stderr}`,
    child,
  );
  const connection = connectToDriver(socket);
  const watchAbort = new AbortController();
  const events: compute.WatchSandboxesEvent[] = [];
  cleanups.push(() => {
    watchAbort.abort();
    connection.close();
  });
  void (async () => {
    try {
      for await (const event of connection.client.watchSandboxes({}, { signal: watchAbort.signal })) {
        events.push(event);
      }
    } catch {
      // aborted at cleanup
    }
  })();
  return { child, connection, events, stderr: () => stderr, watchAbort };
}

/** Runs the driver until it exits (start-up failures). */
function runUntilExit(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ["pipe", "ignore", "pipe"], env });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function sandboxInput(id: string, name: string): compute.DriverSandbox {
  return {
    id,
    name,
    namespace: NS,
    spec: { supervisorToken: `token-of-${id}` },
  } as unknown as compute.DriverSandbox;
}

const get = (f: Fixture, plural: string, name: string): KubeObject | undefined =>
  f.api.get(f.api.type(plural), NS, name);

function platformEvents(driver: RunningDriver, id: string): compute.DriverPlatformEvent[] {
  return driver.events.flatMap((e) =>
    e.payload.case === "platformEvent" && e.payload.value.sandboxId === id && e.payload.value.event
      ? [e.payload.value.event]
      : [],
  );
}

function deletedIds(driver: RunningDriver): string[] {
  return driver.events.flatMap((e) => (e.payload.case === "deleted" ? [e.payload.value.sandboxId] : []));
}

function readyReason(driver: RunningDriver, id: string): string | undefined {
  const snapshots = driver.events.flatMap((e) =>
    e.payload.case === "sandbox" && e.payload.value.sandbox?.id === id ? [e.payload.value.sandbox] : [],
  );
  return snapshots.at(-1)?.status?.conditions.find((c) => c.type === "Ready")?.reason;
}

describe("openshell-driver-kubernetes against the fake API server", () => {
  it("creates the Sandbox and its owned Secret, stops and starts by scaling, deletes CR, Secret and PVC", async () => {
    const f = await fixture();
    const driver = await startDriver(f);
    const { client } = driver.connection;
    const caps = await client.getCapabilities({});
    expect([caps.driverName, caps.defaultImage, caps.supportsGpu]).toEqual([
      "kubernetes",
      "example/sandbox:1",
      false,
    ]);

    await client.createSandbox({ sandbox: sandboxInput("id-1", "brave-otter") });
    const resource = get(f, "sandboxes", "brave-otter") as KubeObject & {
      apiVersion: string;
      spec: { podTemplate: { spec: { containers: { command: string[] }[] } } };
    };
    expect(resource.apiVersion).toBe("agents.x-k8s.io/v1alpha1");
    expect(resource.spec.podTemplate.spec.containers[0]?.command).toEqual([
      "/opt/openshell/bin/openshell-sandbox",
    ]);
    const secret = get(f, "secrets", "brave-otter-supervisor") as KubeObject & {
      data: Record<string, string>;
    };
    expect(Buffer.from(secret.data.token ?? "", "base64").toString()).toBe("token-of-id-1");
    expect(secret.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: "Sandbox", name: "brave-otter", uid: resource.metadata?.uid }),
    ]);
    // The (fake) controller's part: the pod and the workspace claim.
    await waitFor(() => get(f, "pods", "brave-otter") !== undefined, 10_000, "no pod");
    expect(get(f, "persistentvolumeclaims", "workspace-brave-otter")).toBeDefined();
    await waitFor(
      () => platformEvents(driver, "id-1").some((e) => e.reason === "Created"),
      10_000,
      "no Created event",
    );
    await expect(client.createSandbox({ sandbox: sandboxInput("id-9", "brave-otter") })).rejects.toThrow(
      /already exists/,
    );

    // A Kubernetes Event about the pod reaches the watch as a platform event.
    f.api.create(f.api.type("events"), {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "brave-otter.1", namespace: NS },
      involvedObject: { kind: "Pod", name: "brave-otter", namespace: NS },
      type: "Warning",
      reason: "FailedScheduling",
      message: "0/1 nodes are available: 1 Insufficient cpu.",
      count: 1,
      lastTimestamp: new Date().toISOString(),
    } as KubeObject);
    await waitFor(
      () => platformEvents(driver, "id-1").some((e) => e.reason === "FailedScheduling"),
      10_000,
      "the Event did not become a platform event",
    );
    // And one about its workspace claim (storage that cannot be provisioned keeps the pod pending).
    f.api.create(f.api.type("events"), {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "workspace-brave-otter.1", namespace: NS },
      involvedObject: { kind: "PersistentVolumeClaim", name: "workspace-brave-otter", namespace: NS },
      type: "Warning",
      reason: "ProvisioningFailed",
      message: 'storageclass.storage.k8s.io "fast" not found',
      count: 1,
    } as KubeObject);
    await waitFor(
      () => platformEvents(driver, "id-1").some((e) => e.reason === "ProvisioningFailed"),
      10_000,
      "the claim's Event did not become a platform event",
    );
    const scheduling = platformEvents(driver, "id-1").find((e) => e.reason === "FailedScheduling");
    expect(scheduling?.metadata).toMatchObject({
      involved_kind: "Pod",
      involved_name: "brave-otter",
      namespace: NS,
    });

    // What the pod's own status says (here: the supervisor image cannot be pulled) is published once.
    const pod = get(f, "pods", "brave-otter") as KubeObject & { status?: Record<string, unknown> };
    const waiting = {
      waiting: {
        reason: "ImagePullBackOff",
        message: 'Back-off pulling image "example/openshell-gateway:1"',
      },
    };
    f.api.update(
      f.api.type("pods"),
      {
        ...pod,
        status: {
          ...pod.status,
          phase: "Pending",
          initContainerStatuses: [{ name: "openshell-supervisor", state: waiting }],
        },
      },
      NS,
      "status",
    );
    await waitFor(
      () => platformEvents(driver, "id-1").some((e) => e.reason === "ImagePullBackOff"),
      10_000,
      "the pod's ImagePullBackOff did not become a platform event",
    );
    const pull = platformEvents(driver, "id-1").filter((e) => e.reason === "ImagePullBackOff");
    expect(pull.map((e) => [e.type, e.message])).toEqual([
      ["Warning", 'container openshell-supervisor: Back-off pulling image "example/openshell-gateway:1"'],
    ]);

    await client.stopSandbox({ sandboxId: "id-1", sandboxName: "brave-otter" });
    expect((get(f, "sandboxes", "brave-otter") as { spec: { replicas?: number } }).spec.replicas).toBe(0);
    await waitFor(() => get(f, "pods", "brave-otter") === undefined, 10_000, "pod not removed by stop");
    expect(get(f, "persistentvolumeclaims", "workspace-brave-otter")).toBeDefined();
    await waitFor(() => readyReason(driver, "id-1") === "Stopped", 10_000, "no Stopped snapshot");

    await client.startSandbox({ sandboxId: "id-1", sandboxName: "brave-otter" });
    await waitFor(() => get(f, "pods", "brave-otter") !== undefined, 10_000, "pod not back after start");

    const listed = await client.listSandboxes({});
    expect(listed.sandboxes.map((s) => [s.id, s.name])).toEqual([["id-1", "brave-otter"]]);

    expect((await client.deleteSandbox({ sandboxId: "id-1", sandboxName: "brave-otter" })).deleted).toBe(
      true,
    );
    expect(get(f, "sandboxes", "brave-otter")).toBeUndefined();
    expect(get(f, "secrets", "brave-otter-supervisor")).toBeUndefined();
    expect(get(f, "persistentvolumeclaims", "workspace-brave-otter")).toBeUndefined();
    await waitFor(() => deletedIds(driver).includes("id-1"), 10_000, "no deleted event");
    expect((await client.deleteSandbox({ sandboxId: "", sandboxName: "brave-otter" })).deleted).toBe(false);
    // A namesake Sandbox someone else made (no openshell.ai/managed-by label) is not the driver's.
    f.api.create(
      f.api.type("sandboxes"),
      {
        apiVersion: "agents.x-k8s.io/v1alpha1",
        kind: "Sandbox",
        metadata: { name: "foreign" },
        spec: { podTemplate: {} },
      },
      NS,
    );
    expect((await client.deleteSandbox({ sandboxId: "", sandboxName: "foreign" })).deleted).toBe(false);
    await expect(client.stopSandbox({ sandboxId: "", sandboxName: "foreign" })).rejects.toThrow(/not found/);
    expect(get(f, "sandboxes", "foreign")).toBeDefined();
    await expect(client.getSandbox({ sandboxId: "", sandboxName: "brave-otter" })).rejects.toThrow(
      /not found/,
    );
  });

  it("--keep-workspace: delete leaves the workspace claim", async () => {
    const f = await fixture();
    const driver = await startDriver(f, ["--keep-workspace"]);
    const { client } = driver.connection;
    await client.createSandbox({ sandbox: sandboxInput("id-2", "kept") });
    await waitFor(() => get(f, "persistentvolumeclaims", "workspace-kept") !== undefined, 10_000, "no claim");
    await client.deleteSandbox({ sandboxId: "id-2", sandboxName: "kept" });
    expect(get(f, "sandboxes", "kept")).toBeUndefined();
    expect(get(f, "secrets", "kept-supervisor")).toBeUndefined();
    expect(get(f, "persistentvolumeclaims", "workspace-kept")).toBeDefined();
  });

  it("a restarted driver adopts the sandboxes; a broken watch, and one too old to resume (410), miss no deletion", async () => {
    const f = await fixture();
    const first = await startDriver(f);
    await first.connection.client.createSandbox({ sandbox: sandboxInput("id-a", "alpha") });
    await first.connection.client.createSandbox({ sandbox: sandboxInput("id-b", "beta") });
    await stopChild(first.child, "SIGTERM");
    expect(get(f, "sandboxes", "alpha")).toBeDefined();

    const second = await startDriver(f);
    const listed = await second.connection.client.listSandboxes({});
    expect(listed.sandboxes.map((s) => s.id)).toEqual(["id-a", "id-b"]);
    await waitFor(
      () => second.events.filter((e) => e.payload.case === "sandbox").length >= 2,
      10_000,
      "no adopted snapshots",
    );

    // Broken mid-stream: resumed from its resourceVersion; a deletion after the break arrives.
    expect(f.api.breakWatches()).toBeGreaterThan(0);
    f.api.remove(f.api.type("sandboxes"), get(f, "sandboxes", "alpha") as KubeObject, "Background");
    await waitFor(
      () => deletedIds(second).includes("id-a"),
      15_000,
      () => `alpha's deletion was missed: ${second.stderr()}`,
    );

    // Unreachable while beta is deleted and history compacted: the resumed watch gets 410, the
    // driver lists again and diffs.
    const sandboxLists = () =>
      f.api.requests.filter(
        (r) => r.method === "GET" && r.path.includes("/sandboxes?") && !r.path.includes("watch=true"),
      ).length;
    const listsBefore = sandboxLists();
    await f.api.suspend();
    f.api.remove(f.api.type("sandboxes"), get(f, "sandboxes", "beta") as KubeObject, "Background");
    f.api.compact();
    await f.api.resume();
    await waitFor(
      () => deletedIds(second).includes("id-b"),
      40_000,
      () => `beta's deletion was missed: ${second.stderr()}`,
    );
    expect(sandboxLists()).toBeGreaterThan(listsBefore);
  });

  it("uses a newer Sandbox API version when discovery prefers one", async () => {
    const f = await fixture({ sandboxVersions: ["v1alpha1", "v1beta1"] });
    const driver = await startDriver(f);
    await driver.connection.client.createSandbox({ sandbox: sandboxInput("id-n", "newer") });
    expect((get(f, "sandboxes", "newer") as { apiVersion: string }).apiVersion).toBe(
      "agents.x-k8s.io/v1beta1",
    );
    expect(
      f.api.requests.some((r) => r.method === "POST" && r.path.startsWith("/apis/agents.x-k8s.io/v1beta1/")),
    ).toBe(true);
  });

  it("doctor says what the cluster offers, and why not", async () => {
    const f = await fixture();
    const args = [DRIVER, "doctor", "--kubeconfig", f.kubeconfig, "--namespace", NS];
    const run = (): Promise<{ code: number | null; stdout: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "ignore"] });
        let stdout = "";
        child.stdout.on("data", (chunk) => {
          stdout += chunk;
        });
        child.on("exit", (code) => resolve({ code, stdout }));
      });
    const healthy = await run();
    expect(healthy.code).toBe(0);
    expect(healthy.stdout).toContain(`cluster: ${f.api.url} (namespace ${NS})`);
    expect(healthy.stdout).toContain("Sandbox API: agents.x-k8s.io/v1alpha1");
    expect(healthy.stdout).toContain("GPU nodes: no");
    f.api.forbid("list", "pods");
    const forbidden = await run();
    expect(forbidden.code).toBe(1);
    expect(forbidden.stdout).toContain("may not list pods in namespace 'openshell'");
  });

  it("fails at start with the fix: no kubeconfig, unreachable API, forbidden, missing CRD", async () => {
    const f = await fixture();
    const socket = join(f.dir, "x.sock");
    const emptyHome = join(f.dir, "home");
    const noConfig = runUntilExit(
      driverArgs(f, socket).filter((a, i, all) => a !== "--kubeconfig" && all[i - 1] !== "--kubeconfig"),
      {
        ...process.env,
        HOME: emptyHome,
        KUBECONFIG: "",
        KUBERNETES_SERVICE_HOST: "",
      },
    );
    const missing = await noConfig;
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no Kubernetes configuration");
    expect(missing.stderr).toContain("--kubeconfig");

    f.api.forbid("list", "sandboxes");
    const forbidden = await runUntilExit(driverArgs(f, socket));
    expect(forbidden.code).toBe(2);
    expect(forbidden.stderr).toContain("may not list sandboxes.agents.x-k8s.io in namespace 'openshell'");
    expect(forbidden.stderr).toContain("deploy/kubernetes/base/rbac.yaml");
    f.api.allow("list", "sandboxes");

    f.api.removeSandboxCrd();
    const noCrd = await runUntilExit(driverArgs(f, socket));
    expect(noCrd.code).toBe(2);
    expect(noCrd.stderr).toContain("the Sandbox CRD is not installed");
    expect(noCrd.stderr).toContain("kubernetes-sigs/agent-sandbox");

    await f.api.suspend();
    const unreachable = await runUntilExit(driverArgs(f, socket));
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toContain("the Kubernetes API is unreachable (ECONNREFUSED)");
    await f.api.resume();
  });
});
