import { describe, expect, it } from "vitest";
import { l7DeniedBody, POLICY_HEADER, policyDeniedBody, ssrfDeniedBody } from "./denial-bodies.js";

describe("403 bodies", () => {
  it("are upstream's JSON shapes", () => {
    expect(policyDeniedBody("evil.com", 443)).toBe(
      '{"error":"policy_denied","detail":"CONNECT evil.com:443 not permitted by policy"}',
    );
    expect(
      l7DeniedBody("github_api", "POST", "/repos/o/r?x=1", "POST /repos/o/r not permitted by policy"),
    ).toBe(
      '{"error":"policy_denied","policy":"github_api","rule":"POST /repos/o/r?x=1","detail":"POST /repos/o/r not permitted by policy"}',
    );
    expect(ssrfDeniedBody("meta.local", 80, "internal_address")).toBe(
      '{"error":"ssrf_denied","detail":"CONNECT meta.local:80 blocked: internal address"}',
    );
    expect(ssrfDeniedBody("db", 5432, "allowed_ips")).toBe(
      '{"error":"ssrf_denied","detail":"CONNECT db:5432 blocked: allowed_ips check failed"}',
    );
    expect(POLICY_HEADER).toBe("X-OpenShell-Policy");
  });

  it("escape what they quote", () => {
    expect(JSON.parse(l7DeniedBody('a"b', "GET", "/\\", "x")).policy).toBe('a"b');
  });
});
