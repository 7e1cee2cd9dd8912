import { OpenShellError } from "@openshell/core";
import { describe, expect, it } from "vitest";
import {
  buildPolicyUpdatePlan,
  generatedRuleName,
  parseAddEndpointSpec,
  parseRemoveEndpointSpec,
  parseRuleSpec,
} from "./update-plan.js";

function message(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(OpenShellError);
    expect((error as OpenShellError).code).toBe("invalid_argument");
    return (error as OpenShellError).message;
  }
  throw new Error("expected a refusal");
}

describe("generatedRuleName", () => {
  it("replaces . and - with _ and drops other punctuation", () => {
    expect(generatedRuleName("api.github.com", 443)).toBe("allow_api_github_com_443");
    expect(generatedRuleName("my-host.example.com", 8080)).toBe("allow_my_host_example_com_8080");
    expect(generatedRuleName("*.cdn.io", 443)).toBe("allow__cdn_io_443");
  });
});

describe("parseAddEndpointSpec", () => {
  it("parses host:port[:access[:protocol[:enforcement]]]", () => {
    expect(parseAddEndpointSpec("ghcr.io:443")).toMatchObject({
      host: "ghcr.io",
      port: 443,
      ports: [443],
      access: "",
    });
    expect(parseAddEndpointSpec("api.github.com:443:read-only:rest:enforce")).toMatchObject({
      access: "read-only",
      protocol: "rest",
      enforcement: "enforce",
    });
    expect(parseAddEndpointSpec("api.github.com:443::rest:audit")).toMatchObject({
      access: "",
      protocol: "rest",
    });
  });

  it("refuses malformed specs with upstream's messages", () => {
    expect(message(() => parseAddEndpointSpec("ghcr.io"))).toBe(
      "--add-endpoint expects host:port[:access[:protocol[:enforcement]]], got 'ghcr.io'",
    );
    expect(message(() => parseAddEndpointSpec("a.io:443:write-ish"))).toBe(
      "--add-endpoint access segment must be one of read-only, read-write, or full; got 'write-ish' in 'a.io:443:write-ish'",
    );
    expect(message(() => parseAddEndpointSpec("a.io:443:"))).toMatch(/has an empty access segment/);
    expect(message(() => parseAddEndpointSpec("a.io:443:read-only::enforce"))).toBe(
      "--add-endpoint cannot set enforcement without protocol in 'a.io:443:read-only::enforce'",
    );
    expect(message(() => parseAddEndpointSpec("a.io:443::grpc"))).toMatch(
      /protocol segment must be 'rest' or 'sql'/,
    );
    expect(message(() => parseAddEndpointSpec("a.io:443::rest:block"))).toMatch(
      /enforcement segment must be 'enforce' or 'audit'/,
    );
    expect(message(() => parseAddEndpointSpec("a.io:0"))).toBe(
      "--add-endpoint port must be in the range 1-65535, got '0' in 'a.io:0'",
    );
    expect(message(() => parseAddEndpointSpec("a.io:https"))).toMatch(
      /port segment must be a base-10 integer/,
    );
    expect(message(() => parseAddEndpointSpec("a/b:443"))).toMatch(/host must not contain '\/'/);
  });
});

describe("parseRuleSpec / parseRemoveEndpointSpec", () => {
  it("parses host:port:METHOD:path_glob, upper-casing the method", () => {
    expect(parseRuleSpec("api.github.com:443:get:/repos/**")).toEqual({
      host: "api.github.com",
      port: 443,
      method: "GET",
      path: "/repos/**",
    });
    expect(parseRuleSpec("a.io:443:*:**").path).toBe("**");
    expect(parseRemoveEndpointSpec("a.io:8080")).toEqual({ host: "a.io", port: 8080 });
  });

  it("refuses malformed rule specs", () => {
    expect(message(() => parseRuleSpec("a.io:443::/x", "--add-deny"))).toBe(
      "--add-deny has an empty METHOD segment in 'a.io:443::/x'",
    );
    expect(message(() => parseRuleSpec("a.io:443:GET:repos/**"))).toBe(
      "--add-allow path must start with '/' or be '**', got 'repos/**' in 'a.io:443:GET:repos/**'",
    );
    expect(message(() => parseRuleSpec("a.io:443:GET"))).toBe(
      "--add-allow expects host:port:METHOD:path_glob, got 'a.io:443:GET'",
    );
    expect(message(() => parseRemoveEndpointSpec("a.io:70000"))).toMatch(/range 1-65535/);
  });
});

describe("buildPolicyUpdatePlan", () => {
  it("builds upstream's operations in upstream's order", () => {
    const plan = buildPolicyUpdatePlan({
      addEndpoints: ["api.github.com:443:read-only:rest:enforce"],
      binaries: ["/usr/bin/gh", " /usr/bin/gh "],
      removeEndpoints: ["old.example.com:80"],
      removeRules: ["legacy"],
      addAllow: ["b.io:443:post:/x", "a.io:443:GET:/y", "a.io:443:GET:/z"],
      addDeny: ["a.io:443:DELETE:/**"],
    });
    expect(plan.map((operation) => operation.operation.case)).toEqual([
      "addRule",
      "removeEndpoint",
      "removeRule",
      "addAllowRules",
      "addAllowRules",
      "addDenyRules",
    ]);
    const add = plan[0]?.operation;
    if (add?.case !== "addRule") throw new Error("expected add_rule first");
    expect(add.value.ruleName).toBe("allow_api_github_com_443");
    expect(add.value.rule?.binaries.map((b) => b.path)).toEqual(["/usr/bin/gh"]);
    const firstAllow = plan[3]?.operation;
    if (firstAllow?.case !== "addAllowRules") throw new Error("expected add_allow_rules");
    expect(firstAllow.value.host).toBe("a.io");
    expect(firstAllow.value.rules.map((r) => r.allow?.path)).toEqual(["/y", "/z"]);
  });

  it("uses --rule-name for a single endpoint and refuses flag misuse", () => {
    const plan = buildPolicyUpdatePlan({ addEndpoints: ["a.io:443"], ruleName: "shared" });
    expect(plan[0]?.operation.case === "addRule" && plan[0].operation.value.ruleName).toBe("shared");
    expect(message(() => buildPolicyUpdatePlan({}))).toBe(
      "policy update requires at least one operation flag",
    );
    expect(message(() => buildPolicyUpdatePlan({ binaries: ["/usr/bin/gh"] }))).toBe(
      "--binary can only be used with --add-endpoint",
    );
    expect(message(() => buildPolicyUpdatePlan({ removeRules: ["x"], ruleName: "r" }))).toBe(
      "--rule-name can only be used with --add-endpoint",
    );
    expect(message(() => buildPolicyUpdatePlan({ addEndpoints: ["a.io:1", "b.io:2"], ruleName: "r" }))).toBe(
      "--rule-name is only supported when exactly one --add-endpoint is provided",
    );
    expect(message(() => buildPolicyUpdatePlan({ removeRules: [" "] }))).toBe(
      "--remove-rule values must not be empty",
    );
  });
});
