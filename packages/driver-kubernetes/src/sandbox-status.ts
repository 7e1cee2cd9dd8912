import { create } from "@bufbuild/protobuf";
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { compute } from "@openshell/proto";
import { LABEL_SANDBOX_ID, type SandboxResource } from "./sandbox-resource.js";

export const EVENT_SOURCE = "kubernetes";

/** The sandbox id of a resource: its label, else (upstream's fallback) its name without `sandbox-`. */
export function sandboxIdOf(resource: Pick<SandboxResource, "metadata">): string {
  const label = resource.metadata.labels?.[LABEL_SANDBOX_ID];
  if (label) return label;
  const name = resource.metadata.name;
  return name.startsWith("sandbox-") ? name.slice("sandbox-".length) : name;
}

/**
 * §5.1's status mapping: a `Sandbox` resource as the driver protocol's observation (spec omitted).
 * Two deliberate departures: the controller's Ready=True only says the pod runs, while readiness is
 * the gateway's (its supervisor session), so it is reported as Ready=False DependenciesNotReady
 * (provisioning) until the supervisor connects; and a sandbox scaled to 0 by StopSandbox reports
 * Ready=False Stopped, which the gateway maps to STOPPED.
 */
export function toDriverSandbox(resource: SandboxResource, namespace: string): compute.DriverSandbox {
  const status = resource.status ?? {};
  const conditions = (status.conditions ?? []).map((c) =>
    create(compute.DriverConditionSchema, {
      type: c.type ?? "",
      status: c.status ?? "",
      reason: c.reason ?? "",
      message: c.message ?? "",
      lastTransitionTime: c.lastTransitionTime ?? "",
    }),
  );
  const ready = conditions.find((c) => c.type === "Ready");
  if (resource.spec?.replicas === 0) {
    upsertReady(conditions, "Stopped", "the sandbox is scaled to 0; its workspace volume is kept");
  } else if (ready && ready.status.toLowerCase() === "true") {
    upsertReady(
      conditions,
      "DependenciesNotReady",
      "the pod is running; waiting for its supervisor to connect to the gateway",
      ready.lastTransitionTime,
    );
  }
  return create(compute.DriverSandboxSchema, {
    id: sandboxIdOf(resource),
    name: resource.metadata.name,
    namespace: resource.metadata.namespace ?? namespace,
    status: {
      sandboxName: status.sandboxName || resource.metadata.name,
      instanceId: status.agentPod ?? "",
      agentFd: status.agentFd ?? "",
      sandboxFd: status.sandboxFd ?? "",
      conditions,
      deleting: Boolean(resource.metadata.deletionTimestamp),
    },
  });
}

function upsertReady(
  conditions: compute.DriverCondition[],
  reason: string,
  message: string,
  lastTransitionTime = new Date().toISOString(),
): void {
  const condition = create(compute.DriverConditionSchema, {
    type: "Ready",
    status: "False",
    reason,
    message,
    lastTransitionTime,
  });
  const index = conditions.findIndex((c) => c.type === "Ready");
  if (index >= 0) conditions[index] = condition;
  else conditions.push(condition);
}

/** A Kubernetes Event about a sandbox's resource or pod, as a platform event (§5.1). */
export function eventToPlatformEvent(event: CoreV1Event, namespace: string): compute.DriverPlatformEvent {
  const when = event.lastTimestamp ?? event.eventTime ?? event.firstTimestamp;
  const timestampMs = when ? new Date(when as unknown as string).getTime() : Date.now();
  return create(compute.DriverPlatformEventSchema, {
    timestampMs: BigInt(Number.isFinite(timestampMs) ? timestampMs : Date.now()),
    source: EVENT_SOURCE,
    type: event.type ?? "Normal",
    reason: event.reason ?? "",
    message: event.message ?? "",
    metadata: {
      involved_kind: event.involvedObject?.kind ?? "",
      involved_name: event.involvedObject?.name ?? "",
      namespace: event.metadata?.namespace ?? namespace,
      count: String(event.count ?? 1),
    },
  });
}

/** One thing a pod's status says that a user waiting for the sandbox should see. */
export interface PodNotice {
  /** Stable for one condition (dedupes repeats of the same observation). */
  key: string;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

const WAITING_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

/**
 * What a pod's status says about why it waits or failed: unschedulable, image pulls, crash loops,
 * OOM kills and evictions. Clusters usually also emit Events for these; the pod's own status is
 * the one source every API server has, so both are read and the driver dedupes by `key`.
 */
export function podNotices(pod: V1Pod): PodNotice[] {
  const notices: PodNotice[] = [];
  const name = pod.metadata?.name ?? "";
  const status = pod.status;
  if (!status) return notices;
  if (status.reason === "Evicted") {
    notices.push({
      key: `${name}/evicted`,
      type: "Warning",
      reason: "Evicted",
      message: status.message ?? `pod ${name} was evicted`,
    });
  }
  for (const condition of status.conditions ?? []) {
    if (condition.type === "PodScheduled" && condition.status === "False" && condition.reason) {
      notices.push({
        key: `${name}/scheduled/${condition.reason}/${condition.message ?? ""}`,
        type: "Warning",
        reason: condition.reason === "Unschedulable" ? "FailedScheduling" : condition.reason,
        message: condition.message ?? `pod ${name} cannot be scheduled`,
      });
    }
  }
  const containers = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])];
  for (const container of containers) {
    const waiting = container.state?.waiting;
    if (waiting?.reason && WAITING_REASONS.has(waiting.reason)) {
      notices.push({
        key: `${name}/${container.name}/waiting/${waiting.reason}`,
        type: "Warning",
        reason: waiting.reason,
        message: `container ${container.name}: ${waiting.message ?? waiting.reason}`,
      });
    }
    const terminated = container.state?.terminated ?? container.lastState?.terminated;
    if (terminated?.reason === "OOMKilled") {
      notices.push({
        key: `${name}/${container.name}/oom/${container.restartCount ?? 0}`,
        type: "Warning",
        reason: "OOMKilled",
        message: `container ${container.name} ran out of memory and was killed (exit ${terminated.exitCode ?? "?"}); raise its memory limit`,
      });
    }
  }
  return notices;
}
