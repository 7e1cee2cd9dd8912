import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { validateL7Policy } from "./l7-validation.js";
import { compileNetworkPolicy } from "./matching/network-policy.js";
import { validateSandboxPolicy } from "./policy-safety.js";
import { parsePolicyYaml } from "./policy-yaml-parser.js";

/** The shipped example policies (`examples/policies/`, read as files): each parses and compiles. */
const DIR = fileURLToPath(new URL("../../../examples/policies/", import.meta.url));
const FILES = readdirSync(DIR).filter((name) => name.endsWith(".yaml"));

function load(name: string) {
  return parsePolicyYaml(readFileSync(join(DIR, name), "utf8"), name);
}

function connect(name: string, host: string, path: string, ancestors: string[] = []) {
  return compileNetworkPolicy(load(name)).evaluateConnect({
    host,
    port: 443,
    binary: { path, ancestors, cmdlinePaths: [] },
  });
}

describe("examples/policies", () => {
  it("ships the coding agent and deny-all", () => {
    expect(FILES).toEqual(expect.arrayContaining(["coding-agent.yaml", "deny-all.yaml"]));
  });

  it.each(FILES)("%s parses, is safe, and its network part compiles", (name) => {
    const policy = load(name);
    expect(validateSandboxPolicy(policy)).toEqual([]);
    expect(validateL7Policy(policy)).toEqual({ errors: [], warnings: [] });
    expect(compileNetworkPolicy(policy).warnings).toEqual([]);
  });

  it("coding-agent allows its tools on their hosts only", () => {
    const allowed = (host: string, path: string, ancestors?: string[]) =>
      connect("coding-agent.yaml", host, path, ancestors).allowed;
    expect(allowed("github.com", "/usr/lib/git-core/git-remote-https", ["/usr/bin/git"])).toBe(true);
    expect(allowed("api.github.com", "/usr/bin/curl")).toBe(true);
    expect(allowed("api.github.com", "/usr/bin/gh")).toBe(true);
    expect(allowed("registry.npmjs.org", "/opt/openshell/node/bin/node")).toBe(true);
    expect(allowed("pypi.org", "/usr/bin/python3.11")).toBe(true);
    expect(allowed("files.pythonhosted.org", "/usr/bin/python3.11")).toBe(true);
    // The wrong binary for a host, and a host in no rule.
    expect(allowed("registry.npmjs.org", "/usr/bin/python3.11")).toBe(false);
    expect(allowed("pypi.org", "/usr/bin/curl")).toBe(false);
    expect(allowed("example.com", "/usr/bin/curl")).toBe(false);
  });

  it("coding-agent's api.github.com is inspected at L7: reads and writes pass, deletions are refused", () => {
    const decision = connect("coding-agent.yaml", "api.github.com", "/usr/bin/curl");
    if (!decision.allowed) throw new Error(decision.reason);
    expect(decision.endpoint).toMatchObject({ ruleKey: "github_api", inspection: "rest", tlsSkip: false });
    const l7 = decision.endpoint.l7;
    const verdict = (method: string, target: string) => l7?.evaluateRequest({ method, target });
    expect(verdict("GET", "/repos/a/b")).toMatchObject({ allowed: true, mode: "enforce" });
    expect(verdict("POST", "/repos/a/b/issues")).toMatchObject({ allowed: true });
    expect(verdict("PATCH", "/repos/a/b")).toMatchObject({ allowed: true });
    // The deny rule names the deletion; read-write lists no DELETE anywhere else either.
    expect(verdict("DELETE", "/repos/a/b")).toMatchObject({
      allowed: false,
      forward: false,
      rule: "DELETE /repos/*/*",
      reason: "DELETE /repos/a/b blocked by deny rule",
    });
    expect(verdict("DELETE", "/repos/a/b/issues/1/labels/x")).toMatchObject({
      allowed: false,
      forward: false,
    });
    // The other GitHub hosts are L4 only (git's own protocol is not inspected).
    const git = connect("coding-agent.yaml", "github.com", "/usr/bin/git");
    expect(git.allowed && git.endpoint.inspection).toBe("none");
  });

  it("deny-all allows nothing", () => {
    expect(Object.keys(load("deny-all.yaml").networkPolicies)).toEqual([]);
    expect(connect("deny-all.yaml", "github.com", "/usr/bin/git").allowed).toBe(false);
  });
});
