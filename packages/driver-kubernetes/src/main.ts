import { type FlagTable, type FlagValues, OpenShellError, parseFlags } from "@openshell/core";
import { runDriverMain } from "@openshell/driver-sdk";
import { KubeApi, loadKubeConfig } from "./kube-api.js";
import { KubernetesDriver } from "./kubernetes-driver.js";
import { MANAGED_SELECTOR } from "./sandbox-resource.js";

/** The Kubernetes driver's flags beyond the common ones (driver-sdk's DRIVER_COMMON_FLAGS). */
const KUBERNETES_DRIVER_FLAGS = {
  kubeconfig: {
    type: "string",
    env: "OPENSHELL_KUBECONFIG",
    arg: "FILE",
    description: "kubeconfig (default: in-cluster service account, else $KUBECONFIG, else ~/.kube/config)",
  },
  context: { type: "string", env: "OPENSHELL_KUBE_CONTEXT", arg: "NAME", description: "kubeconfig context" },
  namespace: {
    type: "string",
    env: "OPENSHELL_SANDBOX_NAMESPACE",
    default: "default",
    arg: "NAME",
    description: "namespace of the sandboxes",
  },
  "openshell-endpoint": {
    type: "string",
    env: "OPENSHELL_GRPC_ENDPOINT",
    arg: "URL",
    description: "gateway URL the sandboxes dial, as seen from a pod, required",
  },
  "sandbox-image": {
    type: "string",
    env: "OPENSHELL_SANDBOX_IMAGE",
    arg: "IMAGE",
    description: "image of sandboxes whose template names none, required",
  },
  "sandbox-image-pull-policy": {
    type: "enum",
    env: "OPENSHELL_SANDBOX_IMAGE_PULL_POLICY",
    values: ["Always", "IfNotPresent", "Never"],
    arg: "POLICY",
    description: "imagePullPolicy of the sandbox and supervisor images (default: Kubernetes')",
  },
  "supervisor-image": {
    type: "string",
    env: "OPENSHELL_SUPERVISOR_IMAGE",
    arg: "IMAGE",
    description:
      "image whose /opt/openshell/bin (supervisor, Node, launcher) an init container copies into each pod, required",
  },
  "client-tls-secret": {
    type: "string",
    env: "OPENSHELL_CLIENT_TLS_SECRET_NAME",
    arg: "NAME",
    description: "Secret with ca.crt, tls.crt, tls.key mounted for an https:// endpoint",
  },
  "storage-class": {
    type: "string",
    env: "OPENSHELL_WORKSPACE_STORAGE_CLASS",
    arg: "NAME",
    description: "storage class of workspace volumes (default: the cluster's)",
  },
  "workspace-size": {
    type: "string",
    env: "OPENSHELL_WORKSPACE_SIZE",
    default: "2Gi",
    arg: "QUANTITY",
    description: "size of each sandbox's workspace volume",
  },
  "keep-workspace": {
    type: "boolean",
    env: "OPENSHELL_KEEP_WORKSPACE",
    description: "deleting a sandbox keeps its workspace volume",
  },
  "node-selector": {
    type: "list",
    env: "OPENSHELL_SANDBOX_NODE_SELECTOR",
    arg: "KEY=VALUE,...",
    description: "node selector of every sandbox pod",
  },
  "image-pull-secret": {
    type: "list",
    env: "OPENSHELL_SANDBOX_IMAGE_PULL_SECRETS",
    arg: "NAME,...",
    description: "image pull secrets of every sandbox pod",
  },
} as const satisfies FlagTable;

type KubernetesFlags = FlagValues<typeof KUBERNETES_DRIVER_FLAGS>;

function connect(values: KubernetesFlags): KubeApi {
  const { config } = loadKubeConfig({
    kubeconfig: values.kubeconfig,
    context: values.context,
    env: process.env,
  });
  return new KubeApi(config, values.namespace);
}

function parseOptions(values: KubernetesFlags) {
  const endpoint = values["openshell-endpoint"];
  if (!endpoint) {
    throw new OpenShellError(
      "config_invalid",
      "OPENSHELL_GRPC_ENDPOINT is required (--openshell-endpoint): the gateway URL as a pod reaches it, e.g. http://openshell.openshell.svc.cluster.local:8080",
    );
  }
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
    throw new OpenShellError(
      "config_invalid",
      `--openshell-endpoint '${endpoint}' is not an http:// or https:// URL`,
    );
  }
  const clientTlsSecret = values["client-tls-secret"];
  if (endpoint.startsWith("https:") && !clientTlsSecret) {
    throw new OpenShellError(
      "config_invalid",
      "an https:// --openshell-endpoint needs --client-tls-secret (OPENSHELL_CLIENT_TLS_SECRET_NAME): the Secret with ca.crt, tls.crt and tls.key the supervisors use",
    );
  }
  const supervisorImage = values["supervisor-image"];
  if (!supervisorImage) {
    throw new OpenShellError(
      "config_invalid",
      "OPENSHELL_SUPERVISOR_IMAGE is required (--supervisor-image): the image each sandbox pod copies the supervisor from (the gateway's image has it in /opt/openshell/bin)",
    );
  }
  const defaultImage = values["sandbox-image"];
  if (!defaultImage) {
    throw new OpenShellError("config_invalid", "OPENSHELL_SANDBOX_IMAGE is required (--sandbox-image)");
  }
  const nodeSelector: Record<string, string> = {};
  for (const entry of values["node-selector"] ?? []) {
    const at = entry.indexOf("=");
    if (at <= 0) throw new OpenShellError("config_invalid", `--node-selector '${entry}' is not KEY=VALUE`);
    nodeSelector[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return {
    resource: {
      defaultImage,
      imagePullPolicy: values["sandbox-image-pull-policy"],
      supervisorImage,
      endpoint,
      clientTlsSecret,
      storageClass: values["storage-class"],
      workspaceSize: values["workspace-size"],
      nodeSelector,
      imagePullSecrets: values["image-pull-secret"] ?? [],
    },
    keepWorkspace: values["keep-workspace"] ?? false,
  };
}

if (process.argv[2] === "doctor") {
  await doctor(process.argv.slice(3));
} else {
  await runDriverMain({
    binary: "openshell-driver-kubernetes",
    extraFlags: KUBERNETES_DRIVER_FLAGS,
    parseExtra: (values) => ({ ...parseOptions(values), values }),
    create: async (_common, extra, logger) => {
      const api = connect(extra.values);
      const driver = new KubernetesDriver({
        api,
        resource: extra.resource,
        keepWorkspace: extra.keepWorkspace,
        logger,
      });
      await driver.load();
      // Sandboxes live in the cluster: whatever ends the driver, they keep running.
      return { impl: driver.impl(), shutdown: async () => driver.shutdown() };
    },
  });
}

/** `openshell-driver-kubernetes doctor [--kubeconfig ..] [--context ..] [--namespace ..]`: what the cluster offers. */
async function doctor(argv: string[]): Promise<void> {
  const lines: string[] = [];
  let ok = true;
  try {
    const { values } = parseFlags(KUBERNETES_DRIVER_FLAGS, argv, process.env, {
      binary: "openshell-driver-kubernetes doctor",
    });
    const api = connect(values);
    lines.push(`cluster: ${api.server} (namespace ${api.namespace})`);
    const version = await api.discoverSandboxVersion();
    lines.push(`Sandbox API: agents.x-k8s.io/${version}`);
    const sandboxes = await api.listSandboxes(MANAGED_SELECTOR);
    lines.push(`sandboxes: ${sandboxes.items.length}`);
    await api.listPods(MANAGED_SELECTOR);
    await api.listEvents();
    lines.push("permissions: list sandboxes, pods and events: yes");
    const gpu = await api
      .anyGpuNode()
      .catch((error: unknown) => `unknown (${OpenShellError.from(error).message})`);
    lines.push(`GPU nodes: ${gpu === true ? "yes" : gpu === false ? "no" : gpu}`);
  } catch (error) {
    ok = false;
    lines.push(OpenShellError.from(error).message);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  process.exit(ok ? 0 : 1);
}
