import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { EXAMPLE_POLICY_YAML } from "../example-policy.fixture.js";
import { parsePolicyYaml } from "../policy-yaml-parser.js";
import { type ConnectBinary, checkResolvedAddresses, compileNetworkPolicy } from "./network-policy.js";

const bin = (path: string, ancestors: string[] = [], cmdlinePaths: string[] = []): ConnectBinary => ({
  path,
  ancestors,
  cmdlinePaths,
});
const policyOf = (networkPolicies: string) =>
  compileNetworkPolicy(parsePolicyYaml(`version: 1\nnetwork_policies:\n${networkPolicies}`));
const HINT = "SYMLINK HINT: the binary path is the kernel-resolved target from /proc/<pid>/exe";

describe("compileNetworkPolicy + evaluateConnect: upstream's §4.4 example", () => {
  const compiled = compileNetworkPolicy(parsePolicyYaml(EXAMPLE_POLICY_YAML));

  it("evaluates rules in key order", () => {
    expect(compiled.ruleKeys).toEqual([
      "claude_code",
      "github_api",
      "github_git",
      "internal_db",
      "wildcard_cdn",
    ]);
  });

  it("allows claude via node as an ancestor-free exe, and reports key and name", () => {
    const decision = compiled.evaluateConnect({
      host: "api.anthropic.com",
      port: 443,
      binary: bin("/usr/bin/node"),
    });
    expect(decision).toMatchObject({ allowed: true, ruleKey: "claude_code", policyName: "claude_code" });
    if (!decision.allowed) return;
    expect(decision.endpoint).toMatchObject({ host: "api.anthropic.com", inspection: "none", index: 0 });
    expect(decision.endpoint.l7).toBeUndefined();
  });

  it("host matching is case-insensitive and ignores one trailing dot", () => {
    for (const host of ["API.ANTHROPIC.COM", "api.anthropic.com."]) {
      expect(compiled.evaluateConnect({ host, port: 443, binary: bin("/usr/bin/node") }).allowed).toBe(true);
    }
    expect(
      compiled.evaluateConnect({ host: "api.anthropic.com..", port: 443, binary: bin("/usr/bin/node") })
        .allowed,
    ).toBe(false);
  });

  it("denies a host in no policy with every policy's endpoint miss", () => {
    const decision = compiled.evaluateConnect({ host: "evil.com", port: 443, binary: bin("/usr/bin/curl") });
    expect(decision).toEqual({
      allowed: false,
      kind: "endpoint",
      reason: [
        "endpoint evil.com:443 not in policy 'claude_code'",
        "endpoint evil.com:443 not in policy 'github_api'",
        "endpoint evil.com:443 not in policy 'github_git'",
        "endpoint evil.com:443 not in policy 'internal_db'",
        "endpoint evil.com:443 not in policy 'wildcard_cdn'",
      ].join("; "),
    });
  });

  it("denies a wrong port like a wrong host", () => {
    const decision = compiled.evaluateConnect({
      host: "api.github.com",
      port: 80,
      binary: bin("/usr/bin/curl"),
    });
    expect(decision).toMatchObject({ allowed: false, kind: "endpoint" });
  });

  it("denies a binary not in the endpoint's policy, naming the policy, ancestors and cmdline paths", () => {
    const decision = compiled.evaluateConnect({
      host: "api.github.com",
      port: 443,
      binary: bin("/usr/bin/python3.11", ["/usr/bin/bash", "/sbin/init"], ["/usr/bin/gh"]),
    });
    expect(decision).toMatchObject({
      allowed: false,
      kind: "binary",
      ruleKey: "github_api",
      policyName: "github-api-readonly",
    });
    if (decision.allowed) return;
    const reasons = decision.reason.split("; endpoint").length;
    expect(reasons).toBe(4); // four endpoint misses ...
    expect(decision.reason).toContain(
      "binary '/usr/bin/python3.11' not allowed in policy 'github_api' (ancestors: [/usr/bin/bash -> /sbin/init], cmdline: [/usr/bin/gh]). ",
    );
    expect(decision.reason).toContain(HINT);
    expect(decision.reason.indexOf("binary '")).toBeGreaterThan(
      decision.reason.lastIndexOf("endpoint api.github.com"),
    );
  });

  it("cmdline paths never grant; an ancestor does", () => {
    const viaCmdline = bin("/usr/bin/python3", [], ["/usr/local/bin/claude"]);
    expect(
      compiled.evaluateConnect({ host: "api.anthropic.com", port: 443, binary: viaCmdline }).allowed,
    ).toBe(false);
    const viaAncestor = bin("/usr/bin/python3", ["/usr/local/bin/claude"]);
    expect(
      compiled.evaluateConnect({ host: "api.anthropic.com", port: 443, binary: viaAncestor }).allowed,
    ).toBe(true);
  });

  it("binary globs are `/`-delimited and also match ancestors", () => {
    const cdn = (path: string, ancestors: string[] = []) =>
      compiled.evaluateConnect({ host: "img.cdn.example.com", port: 443, binary: bin(path, ancestors) })
        .allowed;
    expect(cdn("/home/alice/.local/bin/tool")).toBe(true);
    expect(cdn("/home/alice/.local/bin/sub/tool")).toBe(true);
    expect(cdn("/home/alice/x/.local/bin/tool")).toBe(false);
    expect(cdn("/usr/bin/curl", ["/home/bob/.local/bin/agent"])).toBe(true);
    const db = (path: string) =>
      compiled.evaluateConnect({ host: "db.internal.corp", port: 5433, binary: bin(path) }).allowed;
    expect(db("/usr/bin/psql")).toBe(true);
    expect(db("/usr/bin/x/psql")).toBe(false);
    expect(db("/usr/local/bin/psql")).toBe(false);
  });

  it("a host glob `*.x` covers one label only", () => {
    const cdn = (host: string) =>
      compiled.evaluateConnect({ host, port: 443, binary: bin("/home/a/.local/bin/t") }).allowed;
    expect(cdn("IMG.cdn.example.com")).toBe(true);
    expect(cdn("a.b.cdn.example.com")).toBe(false);
    expect(cdn("cdn.example.com")).toBe(false);
  });

  it("exposes tls skip, ports and allowed_ips on the selected endpoint", () => {
    const cdn = compiled.evaluateConnect({
      host: "x.cdn.example.com",
      port: 443,
      binary: bin("/home/a/.local/bin/t"),
    });
    expect(cdn.allowed && cdn.endpoint.tlsSkip).toBe(true);
    const db = compiled.evaluateConnect({
      host: "db.internal.corp",
      port: 5432,
      binary: bin("/usr/bin/psql"),
    });
    expect(db.allowed && [...db.endpoint.ports]).toEqual([5432, 5433]);
    expect(db.allowed && db.endpoint.allowedIps).toEqual(["10.0.5.0/24"]);
    if (!db.allowed) return;
    expect(checkResolvedAddresses(db.endpoint, "db.internal.corp", 5432, ["10.0.5.9"])).toEqual({
      allowed: true,
    });
    expect(checkResolvedAddresses(db.endpoint, "db.internal.corp", 5432, ["10.0.9.9"])).toMatchObject({
      allowed: false,
      kind: "allowed_ips",
    });
  });

  it("read-only access with a deny rule, enforced (github_api)", () => {
    const decision = compiled.evaluateConnect({
      host: "api.github.com",
      port: 443,
      binary: bin("/usr/bin/gh"),
    });
    if (!decision.allowed) throw new Error(decision.reason);
    const l7 = decision.endpoint.l7;
    expect(decision.endpoint.inspection).toBe("rest");
    expect(l7?.mode).toBe("enforce");
    expect(l7?.evaluateRequest({ method: "GET", target: "/repos/o/r/issues" })).toEqual({
      allowed: true,
      forward: true,
      mode: "enforce",
      rule: "GET **",
      canonicalPath: "/repos/o/r/issues",
    });
    expect(l7?.evaluateRequest({ method: "head", target: "/" }).allowed).toBe(true);
    expect(l7?.evaluateRequest({ method: "POST", target: "/repos/o/r/issues" })).toEqual({
      allowed: false,
      forward: false,
      mode: "enforce",
      reason: "POST /repos/o/r/issues not permitted by policy",
      canonicalPath: "/repos/o/r/issues",
    });
    expect(l7?.evaluateRequest({ method: "GET", target: "/repos/o/secrets/x?page=2" })).toEqual({
      allowed: false,
      forward: false,
      mode: "enforce",
      rule: "GET /repos/*/secrets/**",
      reason: "GET /repos/o/secrets/x blocked by deny rule",
      canonicalPath: "/repos/o/secrets/x",
      query: "page=2",
    });
    // The deny rule sees the canonical path: no dodging it with dot segments or doubled slashes.
    expect(l7?.evaluateRequest({ method: "GET", target: "/repos/o/public/../secrets//k" })).toMatchObject({
      allowed: false,
      rule: "GET /repos/*/secrets/**",
      canonicalPath: "/repos/o/secrets/k",
    });
    expect(l7?.evaluateRequest({ method: "GET", target: "/repos/o/secrets%2Fk" })).toEqual({
      allowed: false,
      forward: false,
      mode: "enforce",
      reason: "request-target contains an encoded '/' (%2F) which is not allowed on this endpoint",
    });
  });

  it("explicit rules with query matchers (github_git)", () => {
    const decision = compiled.evaluateConnect({ host: "github.com", port: 443, binary: bin("/usr/bin/git") });
    if (!decision.allowed) throw new Error(decision.reason);
    const l7 = decision.endpoint.l7;
    const ok = (method: string, target: string) => l7?.evaluateRequest({ method, target }).allowed;
    expect(ok("GET", "/NVIDIA/OpenShell.git/info/refs?service=git-upload-pack")).toBe(true);
    expect(ok("POST", "/NVIDIA/OpenShell.git/git-upload-pack")).toBe(true);
    expect(ok("POST", "/NVIDIA/OpenShell.git/git-receive-pack")).toBe(false);
    expect(ok("GET", "/search?q=repo:NVIDIA/OpenShell&page=2")).toBe(true);
    expect(ok("GET", "/search?q=repo%3ANVIDIA%2FOpenShell&page=1")).toBe(true);
    expect(ok("GET", "/search?q=repo:x&page=3")).toBe(false); // page not in any
    expect(ok("GET", "/search?q=repo:x")).toBe(false); // page missing
    expect(ok("GET", "/search?q=user:x&page=1")).toBe(false); // q does not match
    expect(ok("GET", "/search?q=repo:x&q=user:y&page=1")).toBe(false); // every value must match
    expect(ok("get", "/search?page=1&q=repo:x&extra=1")).toBe(true); // unnamed params are free
  });
});

describe("evaluateConnect: edge cases", () => {
  it("an empty policy map denies everything with upstream's reason", () => {
    const compiled = compileNetworkPolicy(create(sandboxv1.SandboxPolicySchema, { version: 1 }));
    expect(compiled.evaluateConnect({ host: "a.com", port: 443, binary: bin("/usr/bin/curl") })).toEqual({
      allowed: false,
      kind: "no_policies",
      reason: "network connections not allowed by policy",
    });
  });

  it("a hostless endpoint with allowed_ips matches any host on its ports", () => {
    const compiled = policyOf(`  lan:
    endpoints:
      - { ports: [8080, 8443], allowed_ips: ["192.168.1.0/24"] }
    binaries: [{ path: /usr/bin/curl }]`);
    const at = (host: string, port: number) =>
      compiled.evaluateConnect({ host, port, binary: bin("/usr/bin/curl") });
    const decision = at("printer.lan", 8443);
    expect(decision).toMatchObject({ allowed: true, ruleKey: "lan" });
    expect(at("anything.example", 8080).allowed).toBe(true);
    expect(at("printer.lan", 443).allowed).toBe(false);
    if (!decision.allowed) return;
    expect(checkResolvedAddresses(decision.endpoint, "printer.lan", 8443, ["192.168.1.7"])).toEqual({
      allowed: true,
    });
    expect(checkResolvedAddresses(decision.endpoint, "evil.com", 8443, ["93.184.216.34"])).toMatchObject({
      allowed: false,
    });
  });

  it("a hostless endpoint without allowed_ips matches nothing; a policy host's trailing dot is ignored", () => {
    const policy = parsePolicyYaml(`version: 1
network_policies:
  a:
    endpoints: [{ host: "Example.COM.", port: 443 }]
    binaries: [{ path: /usr/bin/curl }]`);
    const endpoint = policy.networkPolicies.a?.endpoints[0];
    if (endpoint !== undefined) endpoint.host = "";
    policy.networkPolicies.b = create(sandboxv1.NetworkPolicyRuleSchema, {
      endpoints: [{ host: "Example.COM.", ports: [443] }],
      binaries: [{ path: "/usr/bin/curl" }],
    });
    const compiled = compileNetworkPolicy(policy);
    expect(
      compiled.evaluateConnect({ host: "example.com", port: 443, binary: bin("/usr/bin/curl") }),
    ).toMatchObject({
      allowed: true,
      ruleKey: "b",
      policyName: "b",
    });
    expect(
      compiled.evaluateConnect({ host: "other.com", port: 443, binary: bin("/usr/bin/curl") }).allowed,
    ).toBe(false);
  });

  it("several matching rules: the smallest key wins; the endpoint with extended config configures the connection", () => {
    const compiled = policyOf(`  b_rest:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        enforcement: enforce
        rules: [{ allow: { method: POST, path: /v1/** } }]
    binaries: [{ path: /usr/bin/curl }]
  a_plain:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl }]
  c_reads:
    endpoints:
      - host: "*.example.com"
        port: 443
        protocol: rest
        access: read-only
    binaries: [{ path: "/usr/bin/*" }]
  d_other_binary:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        access: full
    binaries: [{ path: /usr/bin/wget }]`);
    const decision = compiled.evaluateConnect({
      host: "api.example.com",
      port: 443,
      binary: bin("/usr/bin/curl"),
    });
    expect(decision).toMatchObject({ allowed: true, ruleKey: "a_plain" });
    if (!decision.allowed) return;
    expect(decision.endpoint).toMatchObject({
      ruleKey: "b_rest",
      inspection: "rest",
      enforcement: "enforce",
    });
    // L7 allow is the union over every matching endpoint of every matching rule (not d: wrong binary).
    const l7 = decision.endpoint.l7;
    expect(l7?.evaluateRequest({ method: "POST", target: "/v1/x" }).allowed).toBe(true);
    expect(l7?.evaluateRequest({ method: "GET", target: "/anything" })).toMatchObject({
      allowed: true,
      rule: "GET **",
    });
    expect(l7?.evaluateRequest({ method: "DELETE", target: "/v1/x" }).allowed).toBe(false);
    // The merged endpoint is cached per combination.
    const again = compiled.evaluateConnect({
      host: "api.example.com",
      port: 443,
      binary: bin("/usr/bin/curl"),
    });
    expect(again.allowed && again.endpoint).toBe(decision.endpoint);
  });

  it("a binary miss in one rule and an allow in another is an allow", () => {
    const compiled = policyOf(`  a:
    endpoints: [{ host: x.com, port: 443 }]
    binaries: [{ path: /usr/bin/wget }]
  b:
    endpoints: [{ host: x.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl }]`);
    expect(
      compiled.evaluateConnect({ host: "x.com", port: 443, binary: bin("/usr/bin/curl") }),
    ).toMatchObject({
      allowed: true,
      ruleKey: "b",
    });
    const denied = compiled.evaluateConnect({ host: "x.com", port: 443, binary: bin("/bin/sh") });
    expect(denied).toMatchObject({ allowed: false, kind: "binary", ruleKey: "a" });
    expect(!denied.allowed && denied.reason.split("; binary").length).toBe(2);
  });

  it("a binary path without `*` is exact even with other glob characters", () => {
    const compiled = policyOf(`  a:
    endpoints: [{ host: x.com, port: 443 }]
    binaries: [{ path: "/opt/bin/to?l" }]`);
    expect(compiled.evaluateConnect({ host: "x.com", port: 443, binary: bin("/opt/bin/tool") }).allowed).toBe(
      false,
    );
    expect(compiled.evaluateConnect({ host: "x.com", port: 443, binary: bin("/opt/bin/to?l") }).allowed).toBe(
      true,
    );
  });

  it("`**.` host globs cross labels but not the apex; `port` and `ports` both work", () => {
    const compiled = policyOf(`  a:
    endpoints:
      - { host: "**.googleapis.com", port: 443 }
      - { host: exact.com, ports: [80, 8080] }
    binaries: [{ path: /usr/bin/curl }]`);
    const ok = (host: string, port = 443) =>
      compiled.evaluateConnect({ host, port, binary: bin("/usr/bin/curl") }).allowed;
    expect(ok("storage.googleapis.com")).toBe(true);
    expect(ok("a.b.googleapis.com")).toBe(true);
    expect(ok("googleapis.com")).toBe(false);
    expect(ok("exact.com", 8080)).toBe(true);
    expect(ok("exact.com", 443)).toBe(false);
  });

  it("sql endpoints are an audit-only passthrough with no L7 evaluator", () => {
    const compiled = policyOf(`  pg:
    endpoints:
      - host: db.example.com
        port: 5432
        protocol: sql
        enforcement: audit
        rules: [{ allow: { command: SELECT } }]
    binaries: [{ path: /usr/bin/psql }]`);
    const decision = compiled.evaluateConnect({
      host: "db.example.com",
      port: 5432,
      binary: bin("/usr/bin/psql"),
    });
    expect(decision.allowed && decision.endpoint.inspection).toBe("sql-audit");
    expect(decision.allowed && decision.endpoint.l7).toBeUndefined();
  });

  it("audit mode (the default) forwards what it would deny", () => {
    const compiled = policyOf(`  a:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        rules: [{ allow: { method: GET, path: "/ok" } }]
    binaries: [{ path: /usr/bin/curl }]`);
    const decision = compiled.evaluateConnect({
      host: "api.example.com",
      port: 443,
      binary: bin("/usr/bin/curl"),
    });
    if (!decision.allowed) throw new Error(decision.reason);
    expect(decision.endpoint.enforcement).toBe("audit");
    expect(decision.endpoint.l7?.evaluateRequest({ method: "DELETE", target: "/ok" })).toEqual({
      allowed: false,
      forward: true,
      mode: "audit",
      reason: "DELETE /ok not permitted by policy",
      canonicalPath: "/ok",
    });
    expect(decision.endpoint.l7?.evaluateRequest({ method: "GET", target: "/%zz" })).toMatchObject({
      allowed: false,
      forward: false,
    });
  });
});

describe("compileNetworkPolicy: what does not compile", () => {
  it("lists every problem in one invalid_argument error", () => {
    const policy = parsePolicyYaml(`version: 1
network_policies:
  a:
    endpoints:
      - { host: "*.ex[ample.com", port: 443 }
      - { host: db.corp, port: 5432, allowed_ips: ["127.0.0.1", "10.0.0.0/40", "169.254.169.254"] }
      - host: api.example.com
        port: 443
        protocol: rest
        rules: [{ allow: { method: GET, path: "/a/{b" } }]
    binaries: [{ path: "/usr/bin/[*" }]`);
    let error: unknown;
    try {
      compileNetworkPolicy(policy);
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: "invalid_argument" });
    const message = (error as Error).message;
    expect(message).toContain(
      "network_policies.a.endpoints[0].host: invalid glob '*.ex[ample.com': unclosed '['",
    );
    expect(message).toContain(
      "network_policies.a.endpoints[1].allowed_ips: allowed_ips entry 127.0.0.1 falls within always-blocked range",
    );
    expect(message).toContain(
      "network_policies.a.endpoints[1].allowed_ips: invalid CIDR/IP in allowed_ips: 10.0.0.0/40",
    );
    expect(message).toContain("allowed_ips entry 169.254.169.254 falls within");
    expect(message).toContain("network_policies.a.endpoints[2].rules: invalid glob '/a/{b': unclosed '{'");
    expect(message).toContain("network_policies.a.binaries[0].path: invalid glob '/usr/bin/[*'");
  });

  it("keeps broad CIDR warnings", () => {
    const compiled = policyOf(`  a:
    endpoints: [{ host: db.corp, port: 5432, allowed_ips: ["10.0.0.0/8"] }]
    binaries: [{ path: /usr/bin/psql }]`);
    expect(compiled.warnings).toEqual([
      "network_policies.a.endpoints[0].allowed_ips: allowed_ips entry has a very broad CIDR 10.0.0.0/8 (/8) < /16; this may expose control-plane services on the same network",
    ]);
  });
});
