import { OpenShellError } from "@openshell/core";
import { describe, expect, it } from "vitest";
import { EXAMPLE_POLICY_YAML } from "./example-policy.fixture.js";
import { checkPolicyYaml, parsePolicyYaml, parsePolicyYamlWithWarnings } from "./policy-yaml-parser.js";

function problemsOf(text: string): string[] {
  return checkPolicyYaml(text).problems;
}

function parseError(text: string, source?: string): OpenShellError {
  try {
    parsePolicyYaml(text, source);
  } catch (error) {
    if (error instanceof OpenShellError) return error;
    throw error;
  }
  throw new Error("expected the policy to be refused");
}

describe("parsePolicyYaml", () => {
  it("reads upstream's example policy (§4.4) into the proto", () => {
    const policy = parsePolicyYaml(EXAMPLE_POLICY_YAML);
    expect(policy.version).toBe(1);
    expect(policy.filesystem?.includeWorkdir).toBe(true);
    expect(policy.filesystem?.readWrite).toEqual(["/sandbox", "/tmp", "/dev/null"]);
    expect(policy.landlock?.compatibility).toBe("best_effort");
    expect(policy.process?.runAsUser).toBe("sandbox");
    expect(Object.keys(policy.networkPolicies).sort()).toEqual([
      "claude_code",
      "github_api",
      "github_git",
      "internal_db",
      "wildcard_cdn",
    ]);
    const git = policy.networkPolicies.github_git?.endpoints[0];
    expect(git?.rules.map((rule) => rule.allow?.method)).toEqual(["GET", "POST", "GET"]);
    expect(git?.rules[2]?.allow?.query.q).toMatchObject({ glob: "repo:*", any: [] });
    expect(git?.rules[2]?.allow?.query.page).toMatchObject({ glob: "", any: ["1", "2"] });
    expect(policy.networkPolicies.github_api?.endpoints[0]?.denyRules[0]).toMatchObject({
      method: "GET",
      path: "/repos/*/secrets/**",
    });
    expect(policy.networkPolicies.internal_db?.endpoints[0]?.allowedIps).toEqual(["10.0.5.0/24"]);
  });

  it("normalises a single port into ports, with port mirroring the first", () => {
    const policy = parsePolicyYaml(EXAMPLE_POLICY_YAML);
    expect(policy.networkPolicies.claude_code?.endpoints[0]).toMatchObject({ port: 443, ports: [443] });
    expect(policy.networkPolicies.internal_db?.endpoints[0]).toMatchObject({
      port: 5432,
      ports: [5432, 5433],
    });
  });

  it("names a rule after its key when `name` is omitted and ignores the deprecated `harness`", () => {
    const policy = parsePolicyYaml(
      "version: 1\nnetwork_policies:\n  api:\n    endpoints: [{ host: a.example.com, port: 443 }]\n    binaries: [{ path: /usr/bin/curl, harness: true }]\n",
    );
    expect(policy.networkPolicies.api?.name).toBe("api");
    expect(policy.networkPolicies.api?.binaries[0]).toMatchObject({ path: "/usr/bin/curl", harness: false });
  });

  it("leaves omitted sections absent and treats null values as omitted", () => {
    const policy = parsePolicyYaml("version: 1\nfilesystem_policy:\nlandlock: ~\n");
    expect(policy.filesystem).toBeUndefined();
    expect(policy.landlock).toBeUndefined();
    expect(policy.process).toBeUndefined();
    expect(policy.networkPolicies).toEqual({});
  });

  it("refuses an unknown top-level field, naming it and its line", () => {
    expect(problemsOf("version: 1\nbogus_field: true\n")).toEqual([
      "bogus_field (line 2): unknown field `bogus_field`, expected one of `version`, `filesystem_policy`, `landlock`, `process`, `network_policies`",
    ]);
  });

  it("refuses an unknown nested field with its full path (there is no inference section)", () => {
    const text = [
      "version: 1",
      "network_policies:",
      "  github:",
      "    endpoints:",
      "      - host: api.github.com",
      "        port: 443",
      "        methods: [GET]",
      "inference:",
      "  model: x",
    ].join("\n");
    const problems = problemsOf(text);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(
      /^network_policies\.github\.endpoints\[0\]\.methods \(line 7\): unknown field `methods`/,
    );
    expect(problems[1]).toMatch(/^inference \(line 8\): unknown field `inference`/);
  });

  it("refuses wrong types with the path and line of the value", () => {
    const text = [
      "version: one",
      "filesystem_policy:",
      "  include_workdir: yes",
      "  read_only: /usr",
      "network_policies:",
      "  a:",
      "    endpoints:",
      "      - host: 42",
      "        port: 70000",
      "        ports: [1, x]",
    ].join("\n");
    expect(problemsOf(text)).toEqual([
      'version (line 1): expected an integer from 0 to 4294967295, found string "one"',
      'filesystem_policy.include_workdir (line 3): expected a boolean (true or false), found string "yes"',
      'filesystem_policy.read_only (line 4): expected a list, found string "/usr"',
      "network_policies.a.endpoints[0].host (line 8): expected a string, found integer 42",
      "network_policies.a.endpoints[0].port (line 9): expected an integer from 0 to 65535, found integer 70000",
      'network_policies.a.endpoints[0].ports[1] (line 10): expected an integer from 0 to 65535, found string "x"',
    ]);
  });

  it("requires version and a binary path", () => {
    expect(problemsOf("landlock: {}\n")).toEqual(["version (line 1): missing field `version`"]);
    expect(problemsOf("")).toEqual(["version (line 1): missing field `version`"]);
    expect(
      problemsOf("version: 1\nnetwork_policies:\n  a:\n    binaries:\n      - harness: false\n"),
    ).toEqual(["network_policies.a.binaries[0].path (line 5): missing field `path`"]);
  });

  it("refuses a rule, endpoint or list item left empty instead of dropping it", () => {
    const text =
      "version: 1\nnetwork_policies:\n  a:\n  b:\n    endpoints:\n      -\n      - host: x.example.com\n";
    expect(problemsOf(text)).toEqual([
      "network_policies.a (line 3): expected a mapping, found nothing",
      "network_policies.b.endpoints[0] (line 6): expected a mapping, found nothing",
    ]);
  });

  it("refuses `port` together with `ports`", () => {
    const text = [
      "version: 1",
      "network_policies:",
      "  github:",
      "    endpoints:",
      "      - host: api.github.com",
      "        port: 443",
      "        ports: [443, 8443]",
    ].join("\n");
    expect(problemsOf(text)).toEqual([
      "network_policies.github.endpoints[0].ports (line 7): port and ports are mutually exclusive; use ports for multiple ports",
    ]);
  });

  it("refuses an empty rules list", () => {
    const text =
      "version: 1\nnetwork_policies:\n  a:\n    endpoints:\n      - host: a.example.com\n        port: 443\n        protocol: rest\n        rules: []\n";
    expect(problemsOf(text)).toContain(
      "network_policies.a.endpoints[0].rules (line 8): rules list cannot be empty (would deny all traffic). Use `access: full` or remove rules.",
    );
  });

  it("refuses invalid YAML and duplicate keys with their line", () => {
    expect(problemsOf("version: 1\nnetwork_policies: [\n")[0]).toMatch(/^yaml \(line \d\): invalid YAML: /);
    expect(problemsOf("version: 1\nversion: 2\n")[0]).toMatch(
      /^yaml \(line 2\): invalid YAML: Map keys must be unique/,
    );
  });

  it("runs the gateway's safety checks with the line of each offending value", () => {
    const text = [
      "version: 1",
      "filesystem_policy:",
      "  read_only:",
      "    - /usr/../etc/shadow",
      "    - relative/path",
      "  read_write:",
      "    - /",
      "process:",
      "  run_as_user: root",
      "network_policies:",
      "  wide:",
      "    endpoints:",
      "      - host: '*.com'",
      "        port: 443",
    ].join("\n");
    expect(problemsOf(text)).toEqual([
      "process.run_as_user (line 9): run_as_user must be 'sandbox', got 'root'",
      "filesystem_policy.read_only[0] (line 4): path contains '..' traversal component: /usr/../etc/shadow",
      "filesystem_policy.read_only[1] (line 5): path must be absolute (start with '/'): relative/path",
      "filesystem_policy.read_write[0] (line 7): read-write path is overly broad: /",
      "network_policies.wide.endpoints[0].host (line 13): network policy 'wide': TLD wildcard '*.com' is not allowed; use subdomain wildcards like '*.example.com' instead",
    ]);
  });

  it("fills an empty process identity with `sandbox` before checking, as the gateway does", () => {
    expect(problemsOf("version: 1\nprocess:\n  run_as_group: sandbox\n")).toEqual([]);
    expect(parsePolicyYaml("version: 1\nprocess:\n  run_as_group: sandbox\n").process?.runAsUser).toBe("");
  });

  it("runs the supervisor's L7 checks", () => {
    const text = [
      "version: 1",
      "network_policies:",
      "  db:",
      "    endpoints:",
      "      - host: '*'",
      "        port: 5432",
      "        protocol: sql",
      "        enforcement: enforce",
      "        access: full",
    ].join("\n");
    expect(problemsOf(text)).toEqual([
      "network_policies.db.endpoints[0].host (line 5): host wildcard '*' matches all hosts; use specific patterns like '*.example.com'",
      "network_policies.db.endpoints[0].enforcement (line 8): SQL enforcement requires full SQL parsing (not available in v1). Use `enforcement: audit`.",
    ]);
  });

  it("throws invalid_argument listing every problem, prefixed with the source", () => {
    const error = parseError("version: 1\nbogus: 1\nother: 2\n", "policy.yaml");
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(
      "policy.yaml: invalid sandbox policy: bogus (line 2): unknown field `bogus`, expected one of `version`, `filesystem_policy`, `landlock`, `process`, `network_policies`; other (line 3): unknown field `other`, expected one of `version`, `filesystem_policy`, `landlock`, `process`, `network_policies`",
    );
    expect(parseError("version: x\n").message).toMatch(/^invalid sandbox policy: version \(line 1\)/);
  });

  it("returns the supervisor's warnings separately", () => {
    const text = [
      "version: 1",
      "network_policies:",
      "  a:",
      "    endpoints:",
      "      - host: api.example.com",
      "        port: 443",
      "        protocol: rest",
      "        tls: skip",
      "        access: read-only",
      "      - host: b.example.com",
      "        port: 443",
      "        tls: terminate",
    ].join("\n");
    const { warnings } = parsePolicyYamlWithWarnings(text);
    expect(warnings).toEqual([
      "network_policies.a.endpoints[0].tls (line 8): 'tls: skip' with L7 rules on port 443 — L7 inspection cannot work on encrypted traffic",
      "network_policies.a.endpoints[1].tls (line 12): 'tls: terminate' is deprecated; TLS termination is now automatic. Use 'tls: skip' to disable.",
    ]);
  });
});
