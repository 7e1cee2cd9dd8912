import type { SsrfDenyKind } from "./ssrf.js";

/** The response header naming the policy on an L7 denial (upstream sends it on every L7 403). */
export const POLICY_HEADER = "X-OpenShell-Policy";

/**
 * The JSON body of the 403 for a CONNECT (or forward-proxy request) the policy refuses, as upstream:
 * `{"error":"policy_denied","detail":"CONNECT host:port not permitted by policy"}`. Sent with
 * `Content-Type: application/json` and `Connection: close`.
 */
export function policyDeniedBody(host: string, port: number): string {
  return JSON.stringify({
    error: "policy_denied",
    detail: `CONNECT ${host}:${port} not permitted by policy`,
  });
}

/**
 * The JSON body of the 403 for an L7 request an `enforce` endpoint refuses, as upstream:
 * `{"error":"policy_denied","policy":<key>,"rule":"<METHOD> <target>","detail":<reason>}`, where
 * `target` is the request-target as sent (with any credential placeholders redacted) and `reason`
 * the L7 decision's. Sent with `X-OpenShell-Policy: <key>` and `Connection: close`.
 */
export function l7DeniedBody(policyName: string, method: string, target: string, reason: string): string {
  return JSON.stringify({
    error: "policy_denied",
    policy: policyName,
    rule: `${method} ${target}`,
    detail: reason,
  });
}

/**
 * The JSON body of the 403 when the SSRF guard refuses an allowed connection after DNS, as upstream:
 * `{"error":"ssrf_denied","detail":"CONNECT host:port blocked: internal address"}`, or
 * `... blocked: allowed_ips check failed` when the endpoint (or a literal-IP host) had an allowlist.
 * The specific reason goes to the log, not to the client.
 */
export function ssrfDeniedBody(host: string, port: number, kind: SsrfDenyKind): string {
  const why = kind === "allowed_ips" ? "allowed_ips check failed" : "internal address";
  return JSON.stringify({ error: "ssrf_denied", detail: `CONNECT ${host}:${port} blocked: ${why}` });
}
