/**
 * A FAKE agent-sandbox controller for tests (kubernetes-sigs/agent-sandbox's role; no cluster can be
 * had on these machines). OpenShell's driver only creates the `Sandbox` custom resource; in a
 * cluster the agent-sandbox controller turns it into a pod and PVCs. This one does the same in the
 * fake API server's store, as upstream names things:
 *
 * - `spec.replicas` 1 (the default): a Pod named as the Sandbox from `spec.podTemplate`, labelled
 *   `agents.x-k8s.io/sandbox-name-hash: <FNV-1a of the name>`, controller-owned by the Sandbox, with
 *   one `persistentVolumeClaim` volume per `spec.volumeClaimTemplates` entry (replacing a template
 *   volume of the same name); the PVCs `<template>-<sandbox>` are created once and owned by the
 *   Sandbox (so deleting the Sandbox deletes them unless the driver orphans or un-owns them);
 * - `spec.replicas` 0: the Pod is deleted, the PVCs stay;
 * - `status`: `replicas`, `selector`, `nodeName`, `podIPs` and a `Ready` condition from the pod
 *   (`DependenciesReady` when the pod is Running and Ready, else `DependenciesNotReady` with the
 *   pod's phase).
 */
import type { FakeKubernetesApiServer, KubeObject, StoreChange } from "./fake-api-server.js";
import { KubeStatusError } from "./kube-status.js";

export const SANDBOX_NAME_HASH_LABEL = "agents.x-k8s.io/sandbox-name-hash";

interface SandboxSpec {
  replicas?: number;
  podTemplate?: {
    metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec?: PodSpec;
  };
  volumeClaimTemplates?: { metadata?: { name?: string; labels?: Record<string, string> }; spec?: unknown }[];
}

interface PodSpec {
  volumes?: { name: string }[];
  [field: string]: unknown;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export class FakeSandboxController {
  private unsubscribe: (() => void) | undefined;
  private queued = false;

  constructor(private readonly api: FakeKubernetesApiServer) {}

  start(): void {
    this.unsubscribe = this.api.subscribe((change) => this.onChange(change));
    this.reconcileAll();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private onChange(change: StoreChange): void {
    const plural = change.resource.plural;
    if (plural !== "sandboxes" && plural !== "pods") return;
    // Coalesce a burst of changes into one pass, after the write that caused it has returned.
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      if (this.unsubscribe) this.reconcileAll();
    });
  }

  private reconcileAll(): void {
    for (const sandbox of this.api.list(this.api.type("sandboxes"), undefined)) {
      try {
        this.reconcile(sandbox);
      } catch (error) {
        // A sandbox deleted or changed mid-pass: the next change reconciles again.
        if (!(error instanceof KubeStatusError)) throw error;
      }
    }
  }

  private reconcile(sandbox: KubeObject): void {
    const metadata = sandbox.metadata ?? {};
    if (metadata.deletionTimestamp) return;
    const name = String(metadata.name);
    const namespace = String(metadata.namespace);
    const spec = (sandbox.spec ?? {}) as SandboxSpec;
    const replicas = spec.replicas ?? 1;
    const pods = this.api.type("pods");
    const claims = this.api.type("persistentvolumeclaims");
    const ownerReferences = [
      {
        apiVersion: String(sandbox.apiVersion),
        kind: "Sandbox",
        name,
        uid: String(metadata.uid),
        controller: true,
        blockOwnerDeletion: true,
      },
    ];
    const claimVolumes: { name: string; persistentVolumeClaim: { claimName: string } }[] = [];
    for (const template of spec.volumeClaimTemplates ?? []) {
      const templateName = template.metadata?.name;
      if (!templateName) continue;
      const claimName = `${templateName}-${name}`;
      claimVolumes.push({ name: templateName, persistentVolumeClaim: { claimName } });
      if (!this.api.get(claims, namespace, claimName)) {
        this.api.create(
          claims,
          {
            metadata: {
              name: claimName,
              labels: { ...(template.metadata?.labels ?? {}), [SANDBOX_NAME_HASH_LABEL]: nameHash(name) },
              ownerReferences,
            },
            spec: structuredClone(template.spec ?? {}) as Record<string, unknown>,
          },
          namespace,
        );
        const created = this.api.get(claims, namespace, claimName);
        if (created) this.api.update(claims, { ...created, status: { phase: "Bound" } }, namespace, "status");
      }
    }
    let pod = this.api.get(pods, namespace, name);
    if (replicas >= 1 && !pod) {
      const podSpec = structuredClone(spec.podTemplate?.spec ?? {}) as PodSpec;
      const names = new Set(claimVolumes.map((volume) => volume.name));
      podSpec.volumes = [
        ...(podSpec.volumes ?? []).filter((volume) => !names.has(volume.name)),
        ...claimVolumes,
      ];
      pod = this.api.create(
        pods,
        {
          metadata: {
            name,
            labels: {
              ...(spec.podTemplate?.metadata?.labels ?? {}),
              [SANDBOX_NAME_HASH_LABEL]: nameHash(name),
            },
            ...(spec.podTemplate?.metadata?.annotations
              ? { annotations: spec.podTemplate.metadata.annotations }
              : {}),
            ownerReferences,
          },
          spec: podSpec,
        },
        namespace,
      );
    } else if (replicas === 0 && pod) {
      this.api.remove(pods, pod, "Background");
      pod = undefined;
    }
    this.writeStatus(sandbox, replicas, pod);
  }

  private writeStatus(sandbox: KubeObject, replicas: number, pod: KubeObject | undefined): void {
    const name = String(sandbox.metadata?.name);
    const podStatus = (pod?.status ?? {}) as {
      phase?: string;
      conditions?: Condition[];
      podIPs?: { ip: string }[];
    };
    const podSpec = (pod?.spec ?? {}) as { nodeName?: string };
    const podReady = podStatus.conditions?.some(
      (condition) => condition.type === "Ready" && condition.status === "True",
    );
    const ready = replicas >= 1 && podStatus.phase === "Running" && podReady === true;
    const previous = ((sandbox.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find(
      (condition) => condition.type === "Ready",
    );
    const message = !pod
      ? replicas === 0
        ? "Sandbox is scaled down"
        : "Pod does not exist"
      : `Pod exists with phase: ${podStatus.phase ?? "Unknown"}${ready ? "" : "; Pod is not Ready"}`;
    const condition: Condition = {
      type: "Ready",
      status: ready ? "True" : "False",
      reason: ready ? "DependenciesReady" : "DependenciesNotReady",
      message,
      observedGeneration: Number(sandbox.metadata?.generation ?? 1),
      lastTransitionTime:
        previous && previous.status === (ready ? "True" : "False")
          ? (previous.lastTransitionTime as string)
          : new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
    const status = {
      replicas: pod ? 1 : 0,
      selector: `${SANDBOX_NAME_HASH_LABEL}=${nameHash(name)}`,
      ...(podSpec.nodeName ? { nodeName: podSpec.nodeName } : {}),
      ...(podStatus.podIPs ? { podIPs: podStatus.podIPs.map((entry) => entry.ip) } : {}),
      conditions: [condition],
    };
    if (JSON.stringify(status) === JSON.stringify(sandbox.status)) return;
    this.api.update(this.api.type("sandboxes"), { ...sandbox, status }, undefined, "status");
  }
}

/** agent-sandbox's NameHash: FNV-1a (32 bit) of the name as 8 hex digits. */
export function nameHash(name: string): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}
