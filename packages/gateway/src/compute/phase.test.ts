import { create } from "@bufbuild/protobuf";
import { compute, SandboxPhase } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { derivePhase, phaseAfterSnapshot } from "./phase.js";

const status = (ready?: { status: string; reason?: string }, deleting = false) =>
  create(compute.DriverSandboxStatusSchema, {
    deleting,
    conditions: ready ? [{ type: "Ready", status: ready.status, reason: ready.reason ?? "" }] : [],
  });

describe("derivePhase", () => {
  it.each([
    ["no status", undefined, SandboxPhase.UNKNOWN],
    ["deleting", status({ status: "True" }, true), SandboxPhase.DELETING],
    ["no Ready condition", status(), SandboxPhase.PROVISIONING],
    ["Ready=True", status({ status: "True" }), SandboxPhase.READY],
    ["Ready=False Starting", status({ status: "False", reason: "Starting" }), SandboxPhase.PROVISIONING],
    [
      "Ready=False starting (case)",
      status({ status: "False", reason: "STARTING" }),
      SandboxPhase.PROVISIONING,
    ],
    [
      "Ready=False DependenciesNotReady",
      status({ status: "False", reason: "DependenciesNotReady" }),
      SandboxPhase.PROVISIONING,
    ],
    [
      "Ready=False ReconcilerError",
      status({ status: "False", reason: "ReconcilerError" }),
      SandboxPhase.PROVISIONING,
    ],
    ["Ready=False ProcessExited", status({ status: "False", reason: "ProcessExited" }), SandboxPhase.ERROR],
    [
      "Ready=False Stopped (powered off)",
      status({ status: "False", reason: "Stopped" }),
      SandboxPhase.STOPPED,
    ],
    ["Ready=Unknown", status({ status: "Unknown" }), SandboxPhase.PROVISIONING],
  ])("%s", (_name, input, expected) => {
    expect(derivePhase(input)).toBe(expected);
  });
});

describe("phaseAfterSnapshot: the gateway's own phases against what the driver reports", () => {
  const P = SandboxPhase;
  it.each([
    ["a stop in progress ignores the VM going down", P.STOPPING, P.ERROR, P.STOPPING],
    ["a stop in progress ignores a not-ready driver", P.STOPPING, P.PROVISIONING, P.STOPPING],
    ["a stopped sandbox stays stopped when the driver says it crashed", P.STOPPED, P.ERROR, P.STOPPED],
    ["a stopped sandbox stays stopped when the driver says it boots", P.STOPPED, P.PROVISIONING, P.STOPPED],
    ["a start waits through the driver's Starting", P.STARTING, P.PROVISIONING, P.STARTING],
    ["a start waits through a snapshot still saying Stopped", P.STARTING, P.STOPPED, P.STARTING],
    ["a start that failed is ERROR", P.STARTING, P.ERROR, P.ERROR],
    ["deletion wins over a stop", P.STOPPED, P.DELETING, P.DELETING],
    ["DELETING stays DELETING", P.DELETING, P.READY, P.DELETING],
    ["a running sandbox follows the driver", P.READY, P.ERROR, P.ERROR],
    ["a sandbox the driver stopped itself is STOPPED", P.PROVISIONING, P.STOPPED, P.STOPPED],
  ])("%s", (_name, stored, derived, expected) => {
    expect(phaseAfterSnapshot(stored, derived)).toBe(expected);
  });
});
