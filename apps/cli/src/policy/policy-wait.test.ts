import type { OpenShellClient } from "@openshell/bootstrap";
import { PolicyStatus } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { waitForPolicyLoad } from "./policy-wait.js";

/** A client whose GetSandboxPolicyStatus answers the given statuses in turn (the last one repeats). */
function clientAnswering(statuses: PolicyStatus[], activeVersion = 1, loadError = "") {
  let calls = 0;
  const client = {
    getSandboxPolicyStatus: async () => {
      const status = statuses[Math.min(calls++, statuses.length - 1)];
      return { revision: { version: 2, status, loadError }, activeVersion };
    },
  } as unknown as OpenShellClient;
  return { client, calls: () => calls };
}

describe("waitForPolicyLoad", () => {
  it("polls until the revision is loaded", async () => {
    const fake = clientAnswering([PolicyStatus.PENDING, PolicyStatus.PENDING, PolicyStatus.LOADED], 2);
    expect(await waitForPolicyLoad(fake.client, "a", 2, 5, 1)).toEqual({
      status: "loaded",
      version: 2,
      activeVersion: 2,
    });
    expect(fake.calls()).toBe(3);
  });

  it("reports a failed load with the supervisor's error and the version still in force", async () => {
    const fake = clientAnswering([PolicyStatus.FAILED], 1, "bad rule");
    expect(await waitForPolicyLoad(fake.client, "a", 2, 5, 1)).toEqual({
      status: "failed",
      version: 2,
      activeVersion: 1,
      error: "bad rule",
    });
  });

  it("gives up at the timeout", async () => {
    const fake = clientAnswering([PolicyStatus.PENDING]);
    const outcome = await waitForPolicyLoad(fake.client, "a", 2, 0.05, 10);
    expect(outcome.status).toBe("timeout");
    expect(fake.calls()).toBeGreaterThan(1);
  });
});
