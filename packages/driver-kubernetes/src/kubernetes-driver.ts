import { create } from "@bufbuild/protobuf";
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { type Logger, OPENSHELL_VERSION, OpenShellError } from "@openshell/core";
import { type ComputeDriverImpl, DriverWatchHub } from "@openshell/driver-sdk";
import { compute } from "@openshell/proto";
import type { KubeApi } from "./kube-api.js";
import { ResourceWatch } from "./resource-watch.js";
import {
  buildSandboxResource,
  buildSupervisorSecret,
  claimName,
  LABEL_MANAGED_BY,
  LABEL_SANDBOX_ID,
  MANAGED_BY,
  MANAGED_SELECTOR,
  ownerReference,
  type SandboxResource,
  type SandboxResourceOptions,
  supervisorSecretName,
  WORKSPACE_VOLUME,
} from "./sandbox-resource.js";
import {
  EVENT_SOURCE,
  eventToPlatformEvent,
  podNotices,
  sandboxIdOf,
  toDriverSandbox,
} from "./sandbox-status.js";

const GPU_UNAVAILABLE =
  "GPU sandbox requested, but the active gateway has no allocatable GPUs. Please refer to documentation and use `openshell doctor` commands to inspect GPU support and gateway configuration.";

export interface KubernetesDriverOptions {
  api: KubeApi;
  /** Everything the resource builder needs except the API version (discovery finds it). */
  resource: Omit<SandboxResourceOptions, "apiVersion" | "namespace">;
  /** `--keep-workspace`: Delete leaves the workspace volumes. */
  keepWorkspace: boolean;
  logger: Logger;
}

/**
 * The Kubernetes compute driver: each sandbox is an agent-sandbox `Sandbox` resource (the
 * controller makes its pod and workspace volume) plus a Secret with its supervisor credential. The
 * cluster holds all the state: a restarted driver lists the resources and carries on, and the
 * sandboxes keep running meanwhile. Watches on the resources, their pods and the namespace's Events
 * feed WatchSandboxes.
 */
export class KubernetesDriver {
  private readonly api: KubeApi;
  private readonly hub = new DriverWatchHub(EVENT_SOURCE);
  /** By resource name (= sandbox name). */
  private readonly sandboxes = new Map<string, SandboxResource>();
  /** Pod name → sandbox id. */
  private readonly pods = new Map<string, string>();
  /** Pod name → notices already published for it. */
  private readonly noticed = new Map<string, Set<string>>();
  private readonly watches: ResourceWatch<{ metadata?: { resourceVersion?: string } }>[] = [];
  private supportsGpu = false;

  constructor(private readonly options: KubernetesDriverOptions) {
    this.api = options.api;
  }

  /** Start-up checks (API reachable, CRD served, permissions) and the watches; throws with the fix. */
  async load(): Promise<void> {
    const version = await this.api.discoverSandboxVersion();
    this.options.logger.info(
      { server: this.api.server, namespace: this.api.namespace, api_version: `${version}` },
      "using the agents.x-k8s.io Sandbox API",
    );
    const sandboxes = new ResourceWatch<SandboxResource>(
      {
        resource: "sandboxes",
        list: () => this.api.listSandboxes(MANAGED_SELECTOR),
        path: this.api.sandboxWatchPath(),
        query: { labelSelector: MANAGED_SELECTOR },
        onSync: (items) => this.syncSandboxes(items),
        onEvent: (type, item) => this.onSandbox(type, item),
      },
      this.api.watch,
      this.options.logger,
    );
    const pods = new ResourceWatch<V1Pod & { metadata?: { resourceVersion?: string } }>(
      {
        resource: "pods",
        list: () => this.api.listPods(MANAGED_SELECTOR),
        path: this.api.corePath("pods"),
        query: { labelSelector: MANAGED_SELECTOR },
        onSync: (items) => this.syncPods(items),
        onEvent: (type, pod) => this.onPod(type, pod),
      },
      this.api.watch,
      this.options.logger,
    );
    const events = new ResourceWatch<CoreV1Event & { metadata?: { resourceVersion?: string } }>(
      {
        resource: "events",
        list: () => this.api.listEvents(),
        path: this.api.corePath("events"),
        query: {},
        // Events already there are history: only new ones (and repeats, MODIFIED) are published.
        onSync: () => {},
        onEvent: (type, event) => {
          if (type !== "DELETED") this.onKubeEvent(event);
        },
      },
      this.api.watch,
      this.options.logger,
    );
    for (const watch of [sandboxes, pods, events]) {
      await watch.start();
      this.watches.push(watch as ResourceWatch<{ metadata?: { resourceVersion?: string } }>);
    }
    try {
      this.supportsGpu = await this.api.anyGpuNode();
    } catch (error) {
      this.options.logger.warn(
        { err: OpenShellError.from(error).message },
        "cannot list nodes to look for GPUs; GPU sandboxes are refused",
      );
    }
    this.options.logger.info({ sandboxes: this.sandboxes.size }, "adopted existing sandboxes");
  }

  shutdown(): void {
    for (const watch of this.watches) watch.stop();
  }

  impl(): ComputeDriverImpl {
    return {
      getCapabilities: () =>
        create(compute.GetCapabilitiesResponseSchema, {
          driverName: "kubernetes",
          driverVersion: OPENSHELL_VERSION,
          defaultImage: this.options.resource.defaultImage,
          supportsGpu: this.supportsGpu,
        }),
      validateSandboxCreate: (req) => {
        this.validate(req.sandbox);
        return {};
      },
      getSandbox: async (req) => {
        const resource = await this.find(req.sandboxId, req.sandboxName);
        if (!resource)
          throw new OpenShellError("not_found", `sandbox ${req.sandboxName || req.sandboxId} not found`);
        const sandbox = toDriverSandbox(resource, this.api.namespace);
        if (req.sandboxId && sandbox.id !== req.sandboxId) {
          throw new OpenShellError(
            "failed_precondition",
            `sandbox ${req.sandboxName} has id ${sandbox.id}, not ${req.sandboxId}`,
          );
        }
        return { sandbox };
      },
      listSandboxes: async () => {
        const { items } = await this.api.listSandboxes(MANAGED_SELECTOR);
        const sandboxes = items
          .map((r) => toDriverSandbox(r, this.api.namespace))
          .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
        return { sandboxes };
      },
      createSandbox: async (req) => {
        await this.create(req.sandbox);
        return {};
      },
      stopSandbox: async (req) => {
        await this.scale(req.sandboxId, req.sandboxName, 0);
        return {};
      },
      startSandbox: async (req) => {
        await this.scale(req.sandboxId, req.sandboxName, 1);
        return {};
      },
      deleteSandbox: async (req) => ({ deleted: await this.delete(req.sandboxId, req.sandboxName) }),
      watchSandboxes: (_req, context) =>
        this.hub.watch(context.signal, () =>
          [...this.sandboxes.values()].map((r) => toDriverSandbox(r, this.api.namespace)),
        ),
    };
  }

  private validate(sandbox: compute.DriverSandbox | undefined): compute.DriverSandbox {
    if (!sandbox?.id) throw new OpenShellError("invalid_argument", "sandbox.id is required");
    if (!sandbox.name) throw new OpenShellError("invalid_argument", "sandbox.name is required");
    // The pod is named after the sandbox, and a pod's name is its hostname: a DNS label.
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(sandbox.name)) {
      throw new OpenShellError(
        "invalid_argument",
        `sandbox name '${sandbox.name}' is not usable as a Kubernetes name: lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit`,
      );
    }
    if (sandbox.spec?.gpu && !this.supportsGpu)
      throw new OpenShellError("failed_precondition", GPU_UNAVAILABLE);
    return sandbox;
  }

  private resourceOptions(): SandboxResourceOptions {
    return {
      ...this.options.resource,
      namespace: this.api.namespace,
      apiVersion: this.api.sandboxApiVersion,
    };
  }

  /**
   * The credential's Secret first (the pod cannot start without it), then the `Sandbox`, then the
   * Secret's owner reference to it, so Kubernetes deletes the Secret with the resource.
   */
  private async create(input: compute.DriverSandbox | undefined): Promise<void> {
    const sandbox = this.validate(input);
    const resource = buildSandboxResource(sandbox, this.resourceOptions());
    if (this.sandboxes.has(sandbox.name) || (await this.api.getSandbox(sandbox.name))) {
      throw new OpenShellError(
        "already_exists",
        `sandbox ${sandbox.name} already exists in namespace ${this.api.namespace}`,
      );
    }
    const secret = buildSupervisorSecret(sandbox, this.api.namespace);
    try {
      await this.api.createSecret(secret);
    } catch (error) {
      if (!(error instanceof OpenShellError && error.code === "already_exists")) throw error;
      // Left by a create that failed half-way (no Sandbox of that name exists): replace it.
      await this.api.deleteSecret(supervisorSecretName(sandbox.name));
      await this.api.createSecret(secret);
    }
    let created: SandboxResource;
    try {
      created = await this.api.createSandbox(resource);
    } catch (error) {
      await this.api.deleteSecret(supervisorSecretName(sandbox.name)).catch(() => false);
      throw error;
    }
    const uid = created.metadata?.uid;
    if (uid) {
      await this.api
        .setSecretOwner(
          supervisorSecretName(sandbox.name),
          ownerReference({ apiVersion: this.api.sandboxApiVersion, name: sandbox.name, uid }),
        )
        .catch((error: unknown) =>
          this.options.logger.warn(
            { sandbox_id: sandbox.id, err: OpenShellError.from(error).message },
            "could not make the Sandbox own its credential Secret; Delete removes it explicitly",
          ),
        );
    }
    this.remember(created);
    this.hub.platformEvent(
      sandbox.id,
      "Normal",
      "Created",
      `Sandbox resource ${sandbox.name} created in namespace ${this.api.namespace}; waiting for its pod`,
    );
  }

  private async scale(id: string, name: string, replicas: 0 | 1): Promise<void> {
    const resource = await this.find(id, name);
    if (!resource) throw new OpenShellError("not_found", `sandbox ${name || id} not found`);
    if (resource.metadata.deletionTimestamp) {
      throw new OpenShellError("failed_precondition", `sandbox ${resource.metadata.name} is being deleted`);
    }
    await this.api.scaleSandbox(resource.metadata.name, replicas);
  }

  /** The resource (the Secret goes with it) and, unless --keep-workspace, its volumes. */
  private async delete(id: string, name: string): Promise<boolean> {
    const resource = await this.find(id, name);
    if (!resource) return false;
    const sandboxName = resource.metadata.name;
    const claims = (resource.spec?.volumeClaimTemplates ?? []).flatMap((template) =>
      template.metadata?.name ? [claimName(template.metadata.name, sandboxName)] : [],
    );
    // The controller makes the Sandbox own its claims: kept ones leave its ownership first.
    if (this.options.keepWorkspace) for (const claim of claims) await this.api.releaseClaim(claim);
    const deleted = await this.api.deleteSandbox(sandboxName);
    // Owner references let the garbage collector do these; doing them too costs a call each and
    // does not depend on the Secret's owner patch having succeeded or on the controller's owners.
    await this.api.deleteSecret(supervisorSecretName(sandboxName));
    if (!this.options.keepWorkspace) for (const claim of claims) await this.api.deleteClaim(claim);
    return deleted;
  }

  /** Only resources this driver made (its label): a namesake someone else made is not ours to touch. */
  private async find(id: string, name: string): Promise<SandboxResource | undefined> {
    if (name) {
      const resource = this.sandboxes.get(name) ?? (await this.api.getSandbox(name));
      return resource?.metadata.labels?.[LABEL_MANAGED_BY] === MANAGED_BY ? resource : undefined;
    }
    for (const resource of this.sandboxes.values()) if (sandboxIdOf(resource) === id) return resource;
    return undefined;
  }

  private remember(resource: SandboxResource): void {
    this.sandboxes.set(resource.metadata.name, resource);
    this.hub.sandbox(toDriverSandbox(resource, this.api.namespace));
  }

  /** After a (re)list: publish every sandbox, and a deletion for each one that is gone meanwhile. */
  private syncSandboxes(items: SandboxResource[]): void {
    const present = new Set(items.map((r) => r.metadata.name));
    for (const [name, resource] of this.sandboxes) {
      if (!present.has(name)) {
        this.sandboxes.delete(name);
        this.hub.deleted(sandboxIdOf(resource));
      }
    }
    for (const item of items) this.remember(item);
  }

  private onSandbox(type: "ADDED" | "MODIFIED" | "DELETED", resource: SandboxResource): void {
    if (type === "DELETED") {
      this.sandboxes.delete(resource.metadata.name);
      this.hub.deleted(sandboxIdOf(resource));
      return;
    }
    this.remember(resource);
  }

  private syncPods(pods: V1Pod[]): void {
    const present = new Set(pods.map((p) => p.metadata?.name ?? ""));
    for (const name of this.pods.keys()) {
      if (!present.has(name)) {
        this.pods.delete(name);
        this.noticed.delete(name);
      }
    }
    for (const pod of pods) this.onPod("MODIFIED", pod);
  }

  private onPod(type: "ADDED" | "MODIFIED" | "DELETED", pod: V1Pod): void {
    const name = pod.metadata?.name;
    if (!name) return;
    if (type === "DELETED") {
      this.pods.delete(name);
      this.noticed.delete(name);
      return;
    }
    const id = pod.metadata?.labels?.[LABEL_SANDBOX_ID];
    if (!id) return;
    this.pods.set(name, id);
    const seen = this.noticed.get(name) ?? new Set<string>();
    this.noticed.set(name, seen);
    for (const notice of podNotices(pod)) {
      if (seen.has(notice.key)) continue;
      seen.add(notice.key);
      this.hub.publishPlatformEvent(
        id,
        create(compute.DriverPlatformEventSchema, {
          timestampMs: BigInt(Date.now()),
          source: EVENT_SOURCE,
          type: notice.type,
          reason: notice.reason,
          message: notice.message,
          metadata: { involved_kind: "Pod", involved_name: name, namespace: this.api.namespace },
        }),
      );
    }
  }

  private onKubeEvent(event: CoreV1Event): void {
    const id = this.sandboxIdForEvent(event);
    if (id) this.hub.publishPlatformEvent(id, eventToPlatformEvent(event, this.api.namespace));
  }

  /** The sandbox an Event is about: its Sandbox resource, its pod, or its workspace volume claim. */
  private sandboxIdForEvent(event: CoreV1Event): string | undefined {
    const involved = event.involvedObject;
    const name = involved?.name ?? "";
    switch (involved?.kind) {
      case "Sandbox": {
        const resource = this.sandboxes.get(name);
        return resource ? sandboxIdOf(resource) : undefined;
      }
      case "Pod": {
        const known = this.pods.get(name);
        if (known) return known;
        const resource = this.sandboxes.get(name);
        return resource ? sandboxIdOf(resource) : undefined;
      }
      case "PersistentVolumeClaim": {
        for (const resource of this.sandboxes.values()) {
          const templates = resource.spec?.volumeClaimTemplates ?? [{ metadata: { name: WORKSPACE_VOLUME } }];
          for (const template of templates) {
            if (claimName(template.metadata?.name ?? "", resource.metadata.name) === name) {
              return sandboxIdOf(resource);
            }
          }
        }
        return undefined;
      }
      default:
        return undefined;
    }
  }
}
