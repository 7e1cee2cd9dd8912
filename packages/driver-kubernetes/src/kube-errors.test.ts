import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { isGone, kubeError, kubeFailure } from "./kube-errors.js";

const call = {
  verb: "create",
  resource: "sandboxes.agents.x-k8s.io",
  namespace: "openshell",
  name: "a",
} as const;

function status(code: number, reason: string, message: string) {
  return JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message });
}

describe("kubeError", () => {
  it("classifies by HTTP status and Status.reason", () => {
    const cases: [number, string, string][] = [
      [404, "NotFound", "not_found"],
      [409, "AlreadyExists", "already_exists"],
      [409, "Conflict", "aborted"],
      [403, "Forbidden", "permission_denied"],
      [422, "Invalid", "invalid_argument"],
      [410, "Expired", "aborted"],
      [503, "ServiceUnavailable", "unavailable"],
      [504, "Timeout", "deadline_exceeded"],
    ];
    for (const [code, reason, expected] of cases) {
      const error = kubeError(new ApiException(code, "x", status(code, reason, "m"), {}), call);
      expect([reason, error.code]).toEqual([reason, expected]);
    }
    // No Status body (401 answers have none): the HTTP status decides.
    expect(kubeError(new ApiException(401, "Unauthorized", undefined, {}), call).code).toBe(
      "unauthenticated",
    );
    expect(kubeError(new ApiException(500, "x", "oops", {}), call).code).toBe("unavailable");
  });

  it("names the forbidden verb and resource and the Role that grants it", () => {
    const error = kubeError(
      new ApiException(
        403,
        "x",
        status(
          403,
          "Forbidden",
          'sandboxes.agents.x-k8s.io is forbidden: User "system:serviceaccount:openshell:gw" cannot create resource',
        ),
        {},
      ),
      call,
    );
    expect(error.code).toBe("permission_denied");
    expect(error.message).toContain("Kubernetes create sandboxes.agents.x-k8s.io a in namespace openshell");
    expect(error.message).toContain("may not create sandboxes.agents.x-k8s.io in namespace 'openshell'");
    expect(error.message).toContain("openshell-driver");
  });

  it("turns an unreachable API into unavailable and a stuck call into §5.1's timeout", () => {
    const refused = new TypeError("fetch failed", {
      cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }),
    });
    const unreachable = kubeError(refused, { verb: "get", resource: "API discovery (/apis)" });
    expect(unreachable.code).toBe("unavailable");
    expect(unreachable.message).toContain("ECONNREFUSED");
    const timeout = kubeError(
      new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      call,
    );
    expect(timeout.code).toBe("deadline_exceeded");
    expect(timeout.message).toContain("timed out after 30s waiting for Kubernetes API");
  });
});

describe("isGone", () => {
  it("knows 410 as an HTTP status, a watch ERROR Status object and an ApiException", () => {
    expect(isGone(Object.assign(new Error("Gone"), { statusCode: 410 }))).toBe(true);
    expect(
      isGone({ kind: "Status", code: 410, reason: "Expired", message: "too old resource version" }),
    ).toBe(true);
    expect(isGone(new ApiException(410, "x", status(410, "Gone", "m"), {}))).toBe(true);
    expect(isGone(new ApiException(404, "x", status(404, "NotFound", "m"), {}))).toBe(false);
    expect(isGone(new Error("anything"))).toBe(false);
    expect(kubeFailure("text")).toBeUndefined();
  });
});
