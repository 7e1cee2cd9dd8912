import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  compute,
  type PlatformEvent,
  PlatformEventSchema,
  type Sandbox,
  SandboxPhase,
  type SandboxStatus,
  SandboxStatusSchema,
  type SandboxTemplate,
  type Toleration,
} from "@openshell/proto";

/**
 * Translation between the gateway's public types and the driver-native ones. Drivers never see a
 * public Sandbox; the gateway never stores a DriverSandbox.
 */
export function toDriverSandbox(sandbox: Sandbox, supervisorToken: string): compute.DriverSandbox {
  const spec = sandbox.spec;
  const template = spec?.template;
  return create(compute.DriverSandboxSchema, {
    id: sandbox.id,
    name: sandbox.name,
    namespace: sandbox.namespace,
    spec: {
      logLevel: spec?.logLevel ?? "",
      environment: spec?.environment ?? {},
      gpu: spec?.gpu ?? false,
      supervisorToken,
      template: {
        image: template?.image ?? "",
        agentSocketPath: template?.agentSocket ?? "",
        labels: template?.labels ?? {},
        environment: template?.environment ?? {},
        resources: toResourceRequirements(template?.resources),
        platformConfig: toPlatformConfig(template),
      },
    },
    status: { sandboxName: sandbox.name, deleting: sandbox.phase === SandboxPhase.DELETING },
  });
}

export function toPublicStatus(status: compute.DriverSandboxStatus | undefined, name: string): SandboxStatus {
  return create(SandboxStatusSchema, {
    sandboxName: status?.sandboxName || name,
    agentPod: status?.instanceId ?? "",
    agentFd: status?.agentFd ?? "",
    sandboxFd: status?.sandboxFd ?? "",
    conditions: (status?.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: c.lastTransitionTime,
    })),
    storage: status?.storage
      ? { diskBytes: status.storage.diskBytes, memorySnapshotBytes: status.storage.memorySnapshotBytes }
      : undefined,
  });
}

export function toPublicPlatformEvent(event: compute.DriverPlatformEvent): PlatformEvent {
  return create(PlatformEventSchema, {
    timestampMs: event.timestampMs,
    source: event.source,
    type: event.type,
    reason: event.reason,
    message: event.message,
    metadata: event.metadata,
  });
}

function toResourceRequirements(
  resources: JsonObject | undefined,
): compute.DriverResourceRequirements | undefined {
  if (!resources) return undefined;
  const json = resources;
  const pick = (section: string, key: string): string => {
    const value = (json[section] as JsonObject | undefined)?.[key];
    return typeof value === "string" || typeof value === "number" ? String(value) : "";
  };
  const req = {
    cpuRequest: pick("requests", "cpu"),
    cpuLimit: pick("limits", "cpu"),
    memoryRequest: pick("requests", "memory"),
    memoryLimit: pick("limits", "memory"),
  };
  if (!req.cpuRequest && !req.cpuLimit && !req.memoryRequest && !req.memoryLimit) return undefined;
  return create(compute.DriverResourceRequirementsSchema, req);
}

function toPlatformConfig(template: SandboxTemplate | undefined): JsonObject | undefined {
  if (!template) return undefined;
  const config: JsonObject = {};
  if (template.runtimeClassName) config.runtime_class_name = template.runtimeClassName;
  if (Object.keys(template.annotations).length > 0) config.annotations = { ...template.annotations };
  if (template.volumeClaimTemplates) config.volume_claim_templates = template.volumeClaimTemplates;
  if (template.resources) config.resources_raw = template.resources;
  // Ours beyond upstream's template: the Kubernetes driver reads them under these keys.
  if (Object.keys(template.nodeSelector).length > 0) config.node_selector = { ...template.nodeSelector };
  if (template.tolerations.length > 0) config.tolerations = template.tolerations.map(toKubeToleration);
  if (template.imagePullSecrets.length > 0) config.image_pull_secrets = [...template.imagePullSecrets];
  if (Object.keys(config).length === 0) return undefined;
  return config;
}

/** A toleration as Kubernetes writes it (core/v1 Toleration JSON): empty fields left out. */
function toKubeToleration(toleration: Toleration): JsonObject {
  const out: JsonObject = {};
  if (toleration.key) out.key = toleration.key;
  if (toleration.operator) out.operator = toleration.operator;
  if (toleration.value) out.value = toleration.value;
  if (toleration.effect) out.effect = toleration.effect;
  if (toleration.tolerationSeconds !== undefined)
    out.tolerationSeconds = Number(toleration.tolerationSeconds);
  return out;
}
