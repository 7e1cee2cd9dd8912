import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { SandboxResource } from "./sandbox-resource.js";
import { eventToPlatformEvent, podNotices, sandboxIdOf, toDriverSandbox } from "./sandbox-status.js";

function resource(extra: Partial<SandboxResource> = {}): SandboxResource {
  return {
    apiVersion: "agents.x-k8s.io/v1alpha1",
    kind: "Sandbox",
    metadata: { name: "brave-otter", namespace: "openshell", labels: { "openshell.ai/sandbox-id": "id-1" } },
    spec: { podTemplate: {} },
    ...extra,
  };
}

describe("toDriverSandbox (§5.1 status mapping)", () => {
  it("maps the resource's status fields and conditions; spec is omitted", () => {
    const sandbox = toDriverSandbox(
      resource({
        status: {
          sandboxName: "brave-otter",
          agentPod: "brave-otter",
          agentFd: "3",
          sandboxFd: "4",
          conditions: [
            {
              type: "Ready",
              status: "False",
              reason: "DependenciesNotReady",
              message: "pod pending",
              lastTransitionTime: "2026-01-01T00:00:00Z",
            },
          ],
        },
      }),
      "openshell",
    );
    expect(sandbox.id).toBe("id-1");
    expect(sandbox.name).toBe("brave-otter");
    expect(sandbox.namespace).toBe("openshell");
    expect(sandbox.spec).toBeUndefined();
    expect(sandbox.status?.instanceId).toBe("brave-otter");
    expect(sandbox.status?.agentFd).toBe("3");
    expect(sandbox.status?.sandboxFd).toBe("4");
    expect(sandbox.status?.deleting).toBe(false);
    expect(
      sandbox.status?.conditions.map((c) => [c.type, c.status, c.reason, c.message, c.lastTransitionTime]),
    ).toEqual([["Ready", "False", "DependenciesNotReady", "pod pending", "2026-01-01T00:00:00Z"]]);
  });

  it("leaves Ready=True to the gateway (supervisor session): the controller's Ready is provisioning", () => {
    const sandbox = toDriverSandbox(
      resource({ status: { conditions: [{ type: "Ready", status: "True", reason: "DependenciesReady" }] } }),
      "openshell",
    );
    const ready = sandbox.status?.conditions.find((c) => c.type === "Ready");
    expect([ready?.status, ready?.reason]).toEqual(["False", "DependenciesNotReady"]);
  });

  it("reports a sandbox scaled to 0 as Stopped and one with a deletionTimestamp as deleting", () => {
    const stopped = toDriverSandbox(resource({ spec: { replicas: 0, podTemplate: {} } }), "openshell");
    expect(stopped.status?.conditions.find((c) => c.type === "Ready")?.reason).toBe("Stopped");
    const deleting = toDriverSandbox(
      resource({ metadata: { name: "x", deletionTimestamp: "2026-01-01T00:00:00Z" } }),
      "openshell",
    );
    expect(deleting.status?.deleting).toBe(true);
    expect(deleting.status?.sandboxName).toBe("x");
    expect(deleting.namespace).toBe("openshell");
  });

  it("falls back to the name without its sandbox- prefix when the id label is missing", () => {
    expect(sandboxIdOf({ metadata: { name: "sandbox-abc" } })).toBe("abc");
    expect(sandboxIdOf({ metadata: { name: "plain" } })).toBe("plain");
  });
});

describe("eventToPlatformEvent", () => {
  it("carries type, reason, message, the last timestamp and the involved object", () => {
    const event = {
      metadata: { name: "e1", namespace: "openshell" },
      involvedObject: { kind: "Pod", name: "brave-otter" },
      type: "Warning",
      reason: "FailedScheduling",
      message: "0/3 nodes are available",
      count: 4,
      firstTimestamp: new Date("2026-01-01T00:00:00Z"),
      lastTimestamp: new Date("2026-01-01T00:01:00Z"),
    } as CoreV1Event;
    const platform = eventToPlatformEvent(event, "openshell");
    expect(platform.source).toBe("kubernetes");
    expect([platform.type, platform.reason, platform.message]).toEqual([
      "Warning",
      "FailedScheduling",
      "0/3 nodes are available",
    ]);
    expect(platform.timestampMs).toBe(BigInt(Date.parse("2026-01-01T00:01:00Z")));
    expect(platform.metadata).toEqual({
      involved_kind: "Pod",
      involved_name: "brave-otter",
      namespace: "openshell",
      count: "4",
    });
  });
});

describe("podNotices", () => {
  it("says why a pod waits or failed: scheduling, image pulls, OOM, eviction", () => {
    const pod = {
      metadata: { name: "brave-otter" },
      status: {
        phase: "Pending",
        reason: "Evicted",
        message: "The node was low on resource: memory.",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: "0/1 nodes: Insufficient cpu",
          },
        ],
        initContainerStatuses: [
          {
            name: "openshell-supervisor",
            state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } },
          },
        ],
        containerStatuses: [
          {
            name: "agent",
            restartCount: 2,
            lastState: { terminated: { reason: "OOMKilled", exitCode: 137 } },
            state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 20s" } },
          },
        ],
      },
    } as unknown as V1Pod;
    const notices = podNotices(pod);
    expect(notices.map((n) => n.reason)).toEqual([
      "Evicted",
      "FailedScheduling",
      "ImagePullBackOff",
      "CrashLoopBackOff",
      "OOMKilled",
    ]);
    expect(notices.every((n) => n.type === "Warning")).toBe(true);
    expect(notices[2]?.message).toBe("container openshell-supervisor: Back-off pulling image");
    expect(new Set(notices.map((n) => n.key)).size).toBe(notices.length);
  });

  it("says nothing about a running pod", () => {
    const pod = {
      metadata: { name: "p" },
      status: { phase: "Running", containerStatuses: [{ name: "agent", state: { running: {} } }] },
    } as unknown as V1Pod;
    expect(podNotices(pod)).toEqual([]);
  });
});
