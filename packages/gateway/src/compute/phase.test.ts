import { create } from "@bufbuild/protobuf";
import { compute, SandboxPhase } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { derivePhase } from "./phase.js";

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
    ["Ready=Unknown", status({ status: "Unknown" }), SandboxPhase.PROVISIONING],
  ])("%s", (_name, input, expected) => {
    expect(derivePhase(input)).toBe(expected);
  });
});
