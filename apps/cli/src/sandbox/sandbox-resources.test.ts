import { describe, expect, it } from "vitest";
import { parseSandboxResources } from "./sandbox-resources.js";

describe("parseSandboxResources", () => {
  it("maps --cpus/--memory/--disk to Kubernetes-style requests and limits", () => {
    const values = { cpu: "2", memory: "512Mi", "ephemeral-storage": "10Gi" };
    expect(parseSandboxResources({ cpus: "2", memory: "512Mi", disk: "10Gi" })).toEqual({
      requests: values,
      limits: values,
    });
    expect(parseSandboxResources({ memory: "2Gi" })).toEqual({
      requests: { memory: "2Gi" },
      limits: { memory: "2Gi" },
    });
    expect(parseSandboxResources({})).toBeUndefined();
  });

  it("names the flag and the expected form for bad input", () => {
    expect(() => parseSandboxResources({ cpus: "0" })).toThrow("bad --cpus '0': use a whole number of CPUs");
    expect(() => parseSandboxResources({ cpus: "1.5" })).toThrow("bad --cpus '1.5'");
    expect(() => parseSandboxResources({ memory: "2GB" })).toThrow(
      "bad --memory '2GB': use a size such as 512Mi or 2Gi",
    );
    expect(() => parseSandboxResources({ disk: "" })).toThrow("bad --disk ''");
    expect(() => parseSandboxResources({ memory: "0" })).toThrow("bad --memory '0'");
  });
});
