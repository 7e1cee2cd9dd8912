import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import {
  ApisApi,
  type ConfigurationOptions,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1Pod,
  type V1Secret,
  Watch,
} from "@kubernetes/client-node";
import { OpenShellError } from "@openshell/core";
import { KUBE_API_TIMEOUT_MS, type KubeCall, kubeError, kubeFailure } from "./kube-errors.js";
import type { WatchFunction } from "./resource-watch.js";
import { SANDBOX_GROUP, SANDBOX_PLURAL, SANDBOX_RESOURCE, type SandboxResource } from "./sandbox-resource.js";

const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/** API versions of the Sandbox resource this driver can write, newest first. */
const KNOWN_SANDBOX_VERSIONS = ["v1", "v1beta1", "v1alpha1"];
const AGENT_SANDBOX_INSTALL =
  "install the agent-sandbox controller and its CRD (sandboxes.agents.x-k8s.io) from https://github.com/kubernetes-sigs/agent-sandbox: kubectl apply -f https://github.com/kubernetes-sigs/agent-sandbox/releases/latest/download/manifest.yaml";

export interface KubeConnectOptions {
  kubeconfig: string | undefined;
  context: string | undefined;
  env: NodeJS.ProcessEnv;
}

/**
 * In-cluster configuration (the pod's service account) when the driver runs in a pod, else a
 * kubeconfig: `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`. None of them: an error that
 * says which to provide (client-node's own default would silently try http://localhost:8080).
 */
export function loadKubeConfig(options: KubeConnectOptions): { config: KubeConfig; source: string } {
  const config = new KubeConfig();
  const inCluster = Boolean(options.env.KUBERNETES_SERVICE_HOST) && existsSync(SERVICE_ACCOUNT_TOKEN);
  let source: string;
  if (options.kubeconfig) {
    if (!existsSync(options.kubeconfig)) {
      throw new OpenShellError("config_invalid", `--kubeconfig file '${options.kubeconfig}' does not exist`);
    }
    config.loadFromFile(options.kubeconfig);
    source = options.kubeconfig;
  } else if (inCluster && !options.context) {
    config.loadFromCluster();
    source = "in-cluster service account";
  } else {
    const files = (options.env.KUBECONFIG ?? "").split(delimiter).filter(Boolean);
    const home = options.env.HOME ?? homedir();
    const candidates = files.length > 0 ? files : [join(home, ".kube", "config")];
    const found = candidates.filter((f) => existsSync(f));
    if (found.length === 0) {
      throw new OpenShellError(
        "config_invalid",
        `no Kubernetes configuration: not running in a cluster (no service account) and no kubeconfig at ${candidates.join(", ")}. Pass --kubeconfig FILE (or set KUBECONFIG), or run the gateway in the cluster with a service account`,
      );
    }
    config.loadFromFile(found[0] as string);
    for (const file of found.slice(1)) {
      const more = new KubeConfig();
      more.loadFromFile(file);
      config.mergeConfig(more, true);
    }
    source = found.join(delimiter);
  }
  if (options.context) {
    if (!config.getContextObject(options.context)) {
      const known = config.getContexts().map((c) => c.name);
      throw new OpenShellError(
        "config_invalid",
        `--context '${options.context}' is not in ${source}; its contexts: ${known.join(", ") || "(none)"}`,
      );
    }
    config.setCurrentContext(options.context);
  }
  if (!config.getCurrentCluster()) {
    throw new OpenShellError(
      "config_invalid",
      `the kubeconfig ${source} has no current cluster; pass --context or set current-context`,
    );
  }
  return { config, source };
}

/**
 * A timeout on every call: the generated client passes a request's signal to fetch, so a middleware
 * that sets one bounds the whole call, body included.
 */
function timeoutOptions(ms: number): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: "append" };
}

export interface SandboxList {
  items: SandboxResource[];
  resourceVersion: string;
}

/**
 * The Kubernetes API calls the driver makes, each bounded by §5.1's 30 s and failing as an
 * `OpenShellError` that names the call (kube-errors.ts).
 */
export class KubeApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apis: ApisApi;
  private readonly watcher: Watch;
  private readonly options: ConfigurationOptions;
  /** `agents.x-k8s.io/<version>`; set by `discoverSandboxVersion`. */
  sandboxVersion = "v1alpha1";

  constructor(
    readonly config: KubeConfig,
    readonly namespace: string,
    timeoutMs = KUBE_API_TIMEOUT_MS,
  ) {
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.core = config.makeApiClient(CoreV1Api);
    this.apis = config.makeApiClient(ApisApi);
    this.watcher = new Watch(config);
    this.options = timeoutOptions(timeoutMs);
  }

  get server(): string {
    return this.config.getCurrentCluster()?.server ?? "";
  }

  get sandboxApiVersion(): string {
    return `${SANDBOX_GROUP}/${this.sandboxVersion}`;
  }

  /**
   * Which version of `agents.x-k8s.io` the cluster serves (discovery, open to every authenticated
   * identity): the preferred one when the driver knows it, else the newest it knows. Also the first
   * call, so an unreachable API or refused credentials fail here.
   */
  async discoverSandboxVersion(): Promise<string> {
    const groups = await this.call({ verb: "get", resource: "API discovery (/apis)" }, () =>
      this.apis.getAPIVersions(undefined, this.options),
    );
    const group = groups.groups.find((g) => g.name === SANDBOX_GROUP);
    const served = new Set(group?.versions.map((v) => v.version) ?? []);
    const preferred = group?.preferredVersion?.version;
    const version =
      preferred && KNOWN_SANDBOX_VERSIONS.includes(preferred)
        ? preferred
        : KNOWN_SANDBOX_VERSIONS.find((v) => served.has(v));
    if (!version) {
      const what = group
        ? `serves ${SANDBOX_GROUP} only in versions ${[...served].join(", ")}, none of which this driver knows (${KNOWN_SANDBOX_VERSIONS.join(", ")})`
        : `does not serve the ${SANDBOX_GROUP} API: the Sandbox CRD is not installed`;
      throw new OpenShellError(
        "failed_precondition",
        `the cluster at ${this.server} ${what}; ${AGENT_SANDBOX_INSTALL}`,
      );
    }
    this.sandboxVersion = version;
    return version;
  }

  async listSandboxes(labelSelector: string): Promise<SandboxList> {
    const list = await this.call(this.sandboxCall("list"), () =>
      this.custom.listNamespacedCustomObject(
        { ...this.sandboxParams(), namespace: this.namespace, labelSelector },
        this.options,
      ),
    );
    return {
      items: (list.items ?? []) as SandboxResource[],
      resourceVersion: list.metadata?.resourceVersion ?? "",
    };
  }

  /** The resource, or undefined when it does not exist. */
  async getSandbox(name: string): Promise<SandboxResource | undefined> {
    return this.orUndefined(() =>
      this.call(this.sandboxCall("get", name), () =>
        this.custom.getNamespacedCustomObject({ ...this.sandboxParams(), name }, this.options),
      ),
    );
  }

  async createSandbox(resource: SandboxResource): Promise<SandboxResource> {
    return this.call(this.sandboxCall("create", resource.metadata.name), () =>
      this.custom.createNamespacedCustomObject({ ...this.sandboxParams(), body: resource }, this.options),
    );
  }

  /** Scales the sandbox: 0 stops its pod (its volumes stay), 1 starts it again. */
  async scaleSandbox(name: string, replicas: 0 | 1): Promise<void> {
    await this.call(this.sandboxCall("patch", name), () =>
      this.custom.patchNamespacedCustomObject(
        { ...this.sandboxParams(), name, body: [{ op: "add", path: "/spec/replicas", value: replicas }] },
        this.options,
      ),
    );
  }

  /** False when there was nothing to delete. */
  async deleteSandbox(name: string): Promise<boolean> {
    const result = await this.orUndefined(() =>
      this.call(this.sandboxCall("delete", name), () =>
        this.custom.deleteNamespacedCustomObject({ ...this.sandboxParams(), name }, this.options),
      ),
    );
    return result !== undefined;
  }

  async createSecret(secret: V1Secret): Promise<V1Secret> {
    return this.call(this.coreCall("create", "secrets", secret.metadata?.name), () =>
      this.core.createNamespacedSecret({ namespace: this.namespace, body: secret }, this.options),
    );
  }

  async setSecretOwner(name: string, owner: unknown): Promise<void> {
    await this.call(this.coreCall("patch", "secrets", name), () =>
      this.core.patchNamespacedSecret(
        {
          name,
          namespace: this.namespace,
          body: [{ op: "add", path: "/metadata/ownerReferences", value: [owner] }],
        },
        this.options,
      ),
    );
  }

  async deleteSecret(name: string): Promise<boolean> {
    const result = await this.orUndefined(() =>
      this.call(this.coreCall("delete", "secrets", name), () =>
        this.core.deleteNamespacedSecret({ name, namespace: this.namespace }, this.options),
      ),
    );
    return result !== undefined;
  }

  async deleteClaim(name: string): Promise<boolean> {
    const result = await this.orUndefined(() =>
      this.call(this.coreCall("delete", "persistentvolumeclaims", name), () =>
        this.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: this.namespace }, this.options),
      ),
    );
    return result !== undefined;
  }

  /**
   * Takes the claim out of its `Sandbox`'s ownership (the controller makes the Sandbox own its
   * PVCs), so deleting the Sandbox leaves it: `--keep-workspace`. False when there is no such claim.
   */
  async releaseClaim(name: string): Promise<boolean> {
    const result = await this.orUndefined(() =>
      this.call(this.coreCall("patch", "persistentvolumeclaims", name), () =>
        this.core.patchNamespacedPersistentVolumeClaim(
          {
            name,
            namespace: this.namespace,
            body: [{ op: "add", path: "/metadata/ownerReferences", value: [] }],
          },
          this.options,
        ),
      ),
    );
    return result !== undefined;
  }

  async listPods(labelSelector: string): Promise<{ items: V1Pod[]; resourceVersion: string }> {
    const list = await this.call(this.coreCall("list", "pods"), () =>
      this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }, this.options),
    );
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
  }

  async listEvents(): Promise<{ items: CoreV1Event[]; resourceVersion: string }> {
    const list = await this.call(this.coreCall("list", "events"), () =>
      this.core.listNamespacedEvent({ namespace: this.namespace }, this.options),
    );
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
  }

  /** Whether any node has allocatable `nvidia.com/gpu` other than "0" (cluster-scoped: may be forbidden). */
  async anyGpuNode(): Promise<boolean> {
    const nodes = await this.call({ verb: "list", resource: "nodes" }, () =>
      this.core.listNode(undefined, this.options),
    );
    return nodes.items.some((node) => {
      const gpus = node.status?.allocatable?.["nvidia.com/gpu"];
      return gpus !== undefined && gpus !== "0";
    });
  }

  sandboxWatchPath(): string {
    return `/apis/${SANDBOX_GROUP}/${this.sandboxVersion}/namespaces/${this.namespace}/${SANDBOX_PLURAL}`;
  }

  corePath(resource: "pods" | "events"): string {
    return `/api/v1/namespaces/${this.namespace}/${resource}`;
  }

  /** client-node's `Watch` (connect timeout 30 s, then ended after 30 s without data). */
  readonly watch: WatchFunction = (path, query, onEvent, done) =>
    this.watcher.watch(path, query, (type, object) => onEvent(type, object), done);

  private sandboxParams() {
    return {
      group: SANDBOX_GROUP,
      version: this.sandboxVersion,
      namespace: this.namespace,
      plural: SANDBOX_PLURAL,
    };
  }

  private sandboxCall(verb: KubeCall["verb"], name?: string): KubeCall {
    return { verb, resource: SANDBOX_RESOURCE, namespace: this.namespace, ...(name ? { name } : {}) };
  }

  private coreCall(verb: KubeCall["verb"], resource: string, name?: string): KubeCall {
    return { verb, resource, namespace: this.namespace, ...(name ? { name } : {}) };
  }

  private async call<R>(call: KubeCall, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (error) {
      throw kubeError(error, call);
    }
  }

  private async orUndefined<R>(fn: () => Promise<R>): Promise<R | undefined> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof OpenShellError && error.code === "not_found") return undefined;
      if (kubeFailure(error)?.httpStatus === 404) return undefined;
      throw error;
    }
  }
}
