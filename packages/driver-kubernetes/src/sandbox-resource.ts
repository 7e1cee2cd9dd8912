import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type {
  V1Container,
  V1EnvVar,
  V1LocalObjectReference,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1PodTemplateSpec,
  V1ResourceRequirements,
  V1Secret,
  V1Toleration,
  V1Volume,
} from "@kubernetes/client-node";
import { OpenShellError } from "@openshell/core";
import type { compute } from "@openshell/proto";

export const SANDBOX_GROUP = "agents.x-k8s.io";
export const SANDBOX_PLURAL = "sandboxes";
const SANDBOX_KIND = "Sandbox";
/** RBAC's name of the resource (errors name it this way). */
export const SANDBOX_RESOURCE = `${SANDBOX_PLURAL}.${SANDBOX_GROUP}`;

export const LABEL_SANDBOX_ID = "openshell.ai/sandbox-id";
export const LABEL_MANAGED_BY = "openshell.ai/managed-by";
export const MANAGED_BY = "openshell";
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

/** Where the supervisor lives in every sandbox pod (the agent container's entrypoint). */
const SUPERVISOR_DIR = "/opt/openshell/bin";
const SUPERVISOR_ENTRYPOINT = `${SUPERVISOR_DIR}/openshell-sandbox`;
/** Where the supervisor image keeps what the init container copies (the same directory). */
const SUPERVISOR_SOURCE_DIR = "/opt/openshell/bin";
const SUPERVISOR_COPY_TARGET = "/openshell-supervisor-bin";
const SUPERVISOR_VOLUME = "openshell-supervisor-bin";
const CLIENT_TLS_VOLUME = "openshell-client-tls";
const CLIENT_TLS_DIR = "/etc/openshell-tls/client";
export const WORKSPACE_VOLUME = "workspace";
const WORKSPACE_MOUNT = "/sandbox";
const WORKSPACE_INIT_MOUNT = "/workspace-pvc";
const SSH_SOCKET_PATH = "/run/openshell/ssh.sock";
/** The workload the supervisor keeps running; SSH and exec are the real work. */
const SANDBOX_COMMAND = "sleep infinity";
const SUPERVISOR_TOKEN_KEY = "token";
/** Upstream's capabilities for the agent container (network namespace, nftables, ptrace, syslog). */
const AGENT_CAPABILITIES = ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYSLOG"];

/**
 * §5.1's workspace seeding, verbatim: the first start copies the image's /sandbox into the new
 * volume (tar, because `cp -a` trips over self-referential symlinks in /sandbox/.uv) and writes the
 * sentinel even when the image has no /sandbox, so a restart never seeds over the user's files.
 */
export const WORKSPACE_INIT_SCRIPT =
  "if [ ! -f /workspace-pvc/.workspace-initialized ]; then if [ -d /sandbox ]; then tar -C /sandbox -cf - . | tar -C /workspace-pvc -xpf -; fi && touch /workspace-pvc/.workspace-initialized; fi";
/** Copies the supervisor (its script, Node and the native launcher) out of the supervisor image. */
export const SUPERVISOR_COPY_SCRIPT = `cp -a ${SUPERVISOR_SOURCE_DIR}/. ${SUPERVISOR_COPY_TARGET}/`;

export interface SandboxResourceOptions {
  namespace: string;
  /** `agents.x-k8s.io/<version>` as discovery found it. */
  apiVersion: string;
  /** `--sandbox-image`: used when the sandbox's template names none. */
  defaultImage: string;
  imagePullPolicy: string | undefined;
  /** `--supervisor-image`: the image the init container copies the supervisor from. */
  supervisorImage: string;
  /** URL the supervisor dials (`--openshell-endpoint`). */
  endpoint: string;
  /** Secret with ca.crt, tls.crt, tls.key for an https endpoint (`--client-tls-secret`). */
  clientTlsSecret: string | undefined;
  storageClass: string | undefined;
  /** Default workspace size (`--workspace-size`, 2Gi). */
  workspaceSize: string;
  /** Node selector and pull secrets every sandbox gets (flags); the template's add to them. */
  nodeSelector: Record<string, string>;
  imagePullSecrets: string[];
}

/** The parts of a `Sandbox` custom resource the driver writes and reads. */
export interface SandboxResource {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: {
    logLevel?: string;
    environment?: Record<string, string>;
    agentSocket?: string;
    replicas?: number;
    volumeClaimTemplates?: V1PersistentVolumeClaim[];
    podTemplate: V1PodTemplateSpec;
  };
  status?: {
    sandboxName?: string;
    agentPod?: string;
    agentFd?: string;
    sandboxFd?: string;
    replicas?: number;
    conditions?: {
      type?: string;
      status?: string;
      reason?: string;
      message?: string;
      lastTransitionTime?: string;
    }[];
  };
}

/** The name of the Secret that holds a sandbox's supervisor credential. */
export function supervisorSecretName(sandboxName: string): string {
  return `${sandboxName}-supervisor`;
}

/** The PVC the agent-sandbox controller makes from a claim template: `<template>-<sandbox>`. */
export function claimName(templateName: string, sandboxName: string): string {
  return `${templateName}-${sandboxName}`;
}

/** The `Sandbox` custom resource for a new sandbox (§5.1, plus the supervisor init container). */
export function buildSandboxResource(
  sandbox: compute.DriverSandbox,
  options: SandboxResourceOptions,
): SandboxResource {
  const spec = sandbox.spec;
  const template = spec?.template;
  const platform = template?.platformConfig ?? {};
  const claims = claimTemplates(platform, options);
  const hasWorkspace = claims.some((c) => c.metadata?.name === WORKSPACE_VOLUME);
  const image = template?.image || options.defaultImage;
  if (!image) {
    throw new OpenShellError(
      "invalid_argument",
      "the sandbox names no image and the driver has no default (--sandbox-image)",
    );
  }
  const pullPolicy = options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {};

  const mounts = [
    ...(options.clientTlsSecret
      ? [{ name: CLIENT_TLS_VOLUME, mountPath: CLIENT_TLS_DIR, readOnly: true }]
      : []),
    { name: SUPERVISOR_VOLUME, mountPath: SUPERVISOR_DIR, readOnly: true },
    ...(hasWorkspace ? [{ name: WORKSPACE_VOLUME, mountPath: WORKSPACE_MOUNT }] : []),
  ];
  const agent: V1Container = {
    name: "agent",
    image,
    ...pullPolicy,
    command: [SUPERVISOR_ENTRYPOINT],
    securityContext: { capabilities: { add: [...AGENT_CAPABILITIES] }, runAsUser: 0 },
    env: agentEnvironment(sandbox, options),
    volumeMounts: mounts,
  };
  const resources = containerResources(template, spec?.gpu ?? false);
  if (resources) agent.resources = resources;

  const initContainers: V1Container[] = [
    {
      name: "openshell-supervisor",
      image: options.supervisorImage,
      ...pullPolicy,
      command: ["sh", "-c", SUPERVISOR_COPY_SCRIPT],
      volumeMounts: [{ name: SUPERVISOR_VOLUME, mountPath: SUPERVISOR_COPY_TARGET }],
    },
  ];
  if (hasWorkspace) {
    initContainers.push({
      name: "workspace-init",
      image,
      ...pullPolicy,
      command: ["sh", "-c", WORKSPACE_INIT_SCRIPT],
      securityContext: { runAsUser: 0 },
      volumeMounts: [{ name: WORKSPACE_VOLUME, mountPath: WORKSPACE_INIT_MOUNT }],
    });
  }

  const volumes: V1Volume[] = [
    ...(options.clientTlsSecret
      ? [{ name: CLIENT_TLS_VOLUME, secret: { secretName: options.clientTlsSecret, defaultMode: 0o400 } }]
      : []),
    { name: SUPERVISOR_VOLUME, emptyDir: {} },
  ];

  const podSpec: V1PodTemplateSpec["spec"] = { containers: [agent], initContainers, volumes };
  const runtimeClass = stringAt(platform, "runtime_class_name");
  if (runtimeClass) podSpec.runtimeClassName = runtimeClass;
  const nodeSelector = { ...options.nodeSelector, ...stringMapAt(platform, "node_selector") };
  if (Object.keys(nodeSelector).length > 0) podSpec.nodeSelector = nodeSelector;
  const tolerations = listAt(platform, "tolerations") as V1Toleration[];
  if (tolerations.length > 0) podSpec.tolerations = tolerations;
  const pullSecrets = [
    ...new Set([...options.imagePullSecrets, ...(listAt(platform, "image_pull_secrets") as unknown[])]),
  ].flatMap((s): V1LocalObjectReference[] =>
    typeof s === "string"
      ? [{ name: s }]
      : isObject(s) && typeof s.name === "string"
        ? [{ name: s.name }]
        : [],
  );
  if (pullSecrets.length > 0) podSpec.imagePullSecrets = pullSecrets;

  const labels = { [LABEL_SANDBOX_ID]: sandbox.id, [LABEL_MANAGED_BY]: MANAGED_BY };
  const podMetadata: V1PodTemplateSpec["metadata"] = {
    // Ours too, so the driver's label-selected pod watch finds the sandbox's pod.
    labels: { ...(template?.labels ?? {}), ...labels },
  };
  const annotations = stringMapAt(platform, "annotations");
  if (Object.keys(annotations).length > 0) podMetadata.annotations = annotations;

  const resourceSpec: SandboxResource["spec"] = { podTemplate: { metadata: podMetadata, spec: podSpec } };
  if (spec?.logLevel) resourceSpec.logLevel = spec.logLevel;
  if (spec && Object.keys(spec.environment).length > 0) resourceSpec.environment = { ...spec.environment };
  if (template?.agentSocketPath) resourceSpec.agentSocket = template.agentSocketPath;
  resourceSpec.volumeClaimTemplates = claims;

  return {
    apiVersion: options.apiVersion,
    kind: SANDBOX_KIND,
    metadata: { name: sandbox.name, namespace: options.namespace, labels },
    spec: orderSpec(resourceSpec),
  };
}

/** The Secret with a sandbox's supervisor credential; owned by its `Sandbox` once that exists. */
export function buildSupervisorSecret(
  sandbox: compute.DriverSandbox,
  namespace: string,
  owner?: { apiVersion: string; name: string; uid: string },
): V1Secret {
  const secret: V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: supervisorSecretName(sandbox.name),
      namespace,
      labels: { [LABEL_SANDBOX_ID]: sandbox.id, [LABEL_MANAGED_BY]: MANAGED_BY },
    },
    type: "Opaque",
    data: { [SUPERVISOR_TOKEN_KEY]: Buffer.from(sandbox.spec?.supervisorToken ?? "").toString("base64") },
  };
  if (owner && secret.metadata) secret.metadata.ownerReferences = [ownerReference(owner)];
  return secret;
}

/** The owner reference that makes Kubernetes' garbage collector delete the Secret with its `Sandbox`. */
export function ownerReference(owner: { apiVersion: string; name: string; uid: string }): V1OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: SANDBOX_KIND,
    name: owner.name,
    uid: owner.uid,
    blockOwnerDeletion: true,
  };
}

/**
 * The agent container's environment in §5.1's order: the template's, the sandbox's, then the ones
 * the supervisor needs (which win). The credential comes from the sandbox's Secret, never inline.
 */
function agentEnvironment(sandbox: compute.DriverSandbox, options: SandboxResourceOptions): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  const upsert = (entry: V1EnvVar) => {
    const index = env.findIndex((e) => e.name === entry.name);
    if (index >= 0) env[index] = entry;
    else env.push(entry);
  };
  for (const [name, value] of Object.entries(sandbox.spec?.template?.environment ?? {}))
    upsert({ name, value });
  for (const [name, value] of Object.entries(sandbox.spec?.environment ?? {})) upsert({ name, value });
  upsert({ name: "OPENSHELL_SANDBOX_ID", value: sandbox.id });
  upsert({ name: "OPENSHELL_SANDBOX", value: sandbox.name });
  upsert({ name: "OPENSHELL_ENDPOINT", value: options.endpoint });
  upsert({ name: "OPENSHELL_SANDBOX_COMMAND", value: SANDBOX_COMMAND });
  upsert({ name: "OPENSHELL_SSH_SOCKET_PATH", value: SSH_SOCKET_PATH });
  upsert({
    name: "OPENSHELL_SUPERVISOR_TOKEN",
    valueFrom: { secretKeyRef: { name: supervisorSecretName(sandbox.name), key: SUPERVISOR_TOKEN_KEY } },
  });
  if (sandbox.spec?.logLevel) upsert({ name: "OPENSHELL_LOG_LEVEL", value: sandbox.spec.logLevel });
  if (options.clientTlsSecret) {
    upsert({ name: "OPENSHELL_TLS_CA", value: `${CLIENT_TLS_DIR}/ca.crt` });
    upsert({ name: "OPENSHELL_TLS_CERT", value: `${CLIENT_TLS_DIR}/tls.crt` });
    upsert({ name: "OPENSHELL_TLS_KEY", value: `${CLIENT_TLS_DIR}/tls.key` });
  }
  return env;
}

/** §5.1: the raw resources struct, overlaid with the typed requests and limits; a GPU adds one. */
function containerResources(
  template: compute.DriverSandboxTemplate | undefined,
  gpu: boolean,
): V1ResourceRequirements | undefined {
  const raw = template?.platformConfig?.resources_raw;
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (isObject(raw)) {
    Object.assign(requests, stringMapAt(raw, "requests"));
    Object.assign(limits, stringMapAt(raw, "limits"));
  }
  const typed = template?.resources;
  if (typed?.cpuRequest) requests.cpu = typed.cpuRequest;
  if (typed?.memoryRequest) requests.memory = typed.memoryRequest;
  if (typed?.cpuLimit) limits.cpu = typed.cpuLimit;
  if (typed?.memoryLimit) limits.memory = typed.memoryLimit;
  if (gpu) limits["nvidia.com/gpu"] = "1";
  const out: V1ResourceRequirements = {};
  if (Object.keys(requests).length > 0) out.requests = requests;
  if (Object.keys(limits).length > 0) out.limits = limits;
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * The user's claim templates from the platform config (a list, or `{items: [...]}`, or one
 * template), else the default workspace: §5.1's `workspace`, ReadWriteOnce, `--workspace-size`, in
 * `--storage-class` when one is set.
 */
function claimTemplates(platform: JsonObject, options: SandboxResourceOptions): V1PersistentVolumeClaim[] {
  const given = platform.volume_claim_templates;
  let list: JsonValue[] = [];
  if (Array.isArray(given)) list = given;
  else if (isObject(given) && Array.isArray(given.items)) list = given.items;
  else if (isObject(given) && Object.keys(given).length > 0) list = [given];
  if (list.length > 0) return list.filter(isObject) as V1PersistentVolumeClaim[];
  const spec: V1PersistentVolumeClaim["spec"] = {
    accessModes: ["ReadWriteOnce"],
    resources: { requests: { storage: options.workspaceSize } },
  };
  if (options.storageClass && spec) spec.storageClassName = options.storageClass;
  return [{ metadata: { name: WORKSPACE_VOLUME }, spec }];
}

/** §5.1's field order: logLevel, environment, agentSocket, volumeClaimTemplates, podTemplate. */
function orderSpec(spec: SandboxResource["spec"]): SandboxResource["spec"] {
  const { logLevel, environment, agentSocket, volumeClaimTemplates, podTemplate } = spec;
  return {
    ...(logLevel ? { logLevel } : {}),
    ...(environment ? { environment } : {}),
    ...(agentSocket ? { agentSocket } : {}),
    ...(volumeClaimTemplates ? { volumeClaimTemplates } : {}),
    podTemplate,
  };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringAt(object: JsonObject, key: string): string | undefined {
  const value = object[key];
  return typeof value === "string" && value ? value : undefined;
}

function stringMapAt(object: JsonObject, key: string): Record<string, string> {
  const value = object[key];
  if (!isObject(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === "string" || typeof v === "number") out[k] = String(v);
  }
  return out;
}

function listAt(object: JsonObject, key: string): JsonValue[] {
  const value = object[key];
  return Array.isArray(value) ? value : [];
}
