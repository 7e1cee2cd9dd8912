import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { EXAMPLE_POLICY_YAML } from "./example-policy.fixture.js";
import { checkGlobSyntax, validateL7Policy } from "./l7-validation.js";
import { parsePolicyYaml } from "./policy-yaml-parser.js";

type EndpointInit = NonNullable<Parameters<typeof create<typeof sandboxv1.NetworkEndpointSchema>>[1]>;

function check(...endpoints: EndpointInit[]) {
  return validateL7Policy(
    create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      networkPolicies: { api: { name: "api", endpoints } },
    }),
  );
}

describe("validateL7Policy", () => {
  it("finds nothing wrong in upstream's example", () => {
    expect(validateL7Policy(parsePolicyYaml(EXAMPLE_POLICY_YAML))).toEqual({ errors: [], warnings: [] });
  });

  it("refuses host wildcards that match everything or are not leading labels", () => {
    expect(
      check({ host: "*", port: 443 }, { host: "api.*.com", port: 443 }, { host: "*.com", port: 443 }).errors,
    ).toEqual([
      "api.endpoints[0]: host wildcard '*' matches all hosts; use specific patterns like '*.example.com'",
      "api.endpoints[1]: host wildcard must start with '*.' or '**.' (e.g., '*.example.com'), got 'api.*.com'",
      "api.endpoints[2]: TLD wildcard '*.com' is not allowed; use subdomain wildcards like '*.example.com' instead",
    ]);
  });

  it("refuses a port outside ports, rules with access, a protocol without rules, sql enforce", () => {
    const allowAll = { allow: { method: "*", path: "**" } };
    expect(
      check(
        { host: "a.example.com", port: 80, ports: [443] },
        {
          host: "b.example.com",
          port: 443,
          ports: [443],
          protocol: "rest",
          access: "full",
          rules: [allowAll],
        },
        { host: "c.example.com", port: 443, ports: [443], protocol: "rest" },
        {
          host: "d.example.com",
          port: 5432,
          ports: [5432],
          protocol: "sql",
          enforcement: "enforce",
          access: "full",
        },
      ).errors,
    ).toEqual([
      "api.endpoints[0]: port and ports are mutually exclusive; use ports for multiple ports",
      "api.endpoints[1]: rules and access are mutually exclusive",
      "api.endpoints[2]: protocol requires rules or access to define allowed traffic",
      "api.endpoints[3]: SQL enforcement requires full SQL parsing (not available in v1). Use `enforcement: audit`.",
    ]);
  });

  it("warns about deprecated tls values and `tls: skip` with L7 on 443", () => {
    expect(
      check(
        { host: "a.example.com", port: 443, ports: [443], tls: "terminate" },
        { host: "b.example.com", port: 443, ports: [443], tls: "passthrough" },
        { host: "c.example.com", ports: [8443, 443], tls: "skip", protocol: "rest", access: "read-only" },
        { host: "d.example.com", ports: [443], tls: "skip" },
      ),
    ).toEqual({
      errors: [],
      warnings: [
        "api.endpoints[0]: 'tls: terminate' is deprecated; TLS termination is now automatic. Use 'tls: skip' to disable.",
        "api.endpoints[1]: 'tls: passthrough' is deprecated; TLS termination is now automatic. Use 'tls: skip' to disable.",
        "api.endpoints[2]: 'tls: skip' with L7 rules on port 443 — L7 inspection cannot work on encrypted traffic",
      ],
    });
  });

  it("requires protocol and an allow base for deny rules", () => {
    expect(
      check({ host: "a.example.com", ports: [443], denyRules: [{ method: "GET", path: "/x" }] }).errors,
    ).toEqual([
      "api.endpoints[0]: deny_rules require protocol (L7 inspection must be enabled)",
      "api.endpoints[0]: deny_rules require rules or access to define the base allow set",
    ]);
  });

  it("warns about unknown methods and malformed globs; refuses a matcher with both glob and any", () => {
    const result = check({
      host: "a.example.com",
      ports: [443],
      protocol: "rest",
      rules: [
        {
          allow: {
            method: "FETCH",
            path: "/x",
            query: { q: { glob: "[a" }, both: { glob: "x", any: ["y"] } },
          },
        },
      ],
      denyRules: [{ method: "PURGE", path: "/y}" }],
    });
    expect(result.errors).toEqual([
      "api.endpoints[0].rules[0].allow.query.both: matcher cannot specify both `glob` and `any`",
    ]);
    expect(result.warnings).toEqual([
      "api.endpoints[0]: Unknown HTTP method 'FETCH'. Standard methods: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS.",
      "api.endpoints[0].rules[0].allow.query.q: glob pattern '[a' has unclosed '['",
      "api.endpoints[0].deny_rules[0]: Unknown HTTP method 'PURGE'. Standard methods: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS.",
      "api.endpoints[0].deny_rules[0].path: glob pattern '/y}' has unmatched '}'",
    ]);
  });

  it("checks glob syntax like upstream", () => {
    expect(checkGlobSyntax("/repos/*/secrets/**")).toBeUndefined();
    expect(checkGlobSyntax("a]")).toBe("glob pattern 'a]' has unmatched ']'");
    expect(checkGlobSyntax("{a,b")).toBe("glob pattern '{a,b' has unclosed '{'");
  });
});
