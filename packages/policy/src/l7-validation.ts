import type { sandboxv1 } from "@openshell/proto";
import { canonicalPorts } from "./endpoint-ports.js";
import type { PolicyIssue } from "./policy-issue.js";

/** One finding of the supervisor-side L7 checks, located under its endpoint. */
export type L7Finding = PolicyIssue & {
  severity: "error" | "warning";
  /** Upstream's location prefix, `<rule key>.endpoints[<i>]` plus any sub-path. */
  location: string;
  /** True for the TLD-wildcard error, which the gateway's safety checks also report. */
  tldWildcard?: boolean;
};

const HTTP_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "*",
]);

/**
 * The supervisor's L7 checks (upstream `validate_l7_policies`, §4.2) over every endpoint, with
 * upstream's messages. Errors stop the supervisor from loading the policy; warnings are logged.
 */
export function findL7Findings(policy: sandboxv1.SandboxPolicy): L7Finding[] {
  const findings: L7Finding[] = [];
  for (const [key, rule] of Object.entries(policy.networkPolicies)) {
    rule.endpoints.forEach((endpoint, index) => {
      checkEndpoint(key, index, endpoint, findings);
    });
  }
  return findings;
}

/** Supervisor-side L7 validation: `<key>.endpoints[<i>]: <message>` errors and warnings. */
export function validateL7Policy(policy: sandboxv1.SandboxPolicy): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const finding of findL7Findings(policy)) {
    (finding.severity === "error" ? errors : warnings).push(`${finding.location}: ${finding.message}`);
  }
  return { errors, warnings };
}

function checkEndpoint(key: string, index: number, ep: sandboxv1.NetworkEndpoint, out: L7Finding[]): void {
  const base = ["network_policies", key, "endpoints", index];
  const loc = `${key}.endpoints[${index}]`;
  const add: AddFinding = (
    severity,
    message,
    locationSub = [],
    pathSub = locationSub,
    tldWildcard = false,
  ) => {
    const finding: L7Finding = {
      severity,
      message,
      path: [...base, ...pathSub],
      location: loc + formatSub(locationSub),
    };
    if (tldWildcard) finding.tldWildcard = true;
    out.push(finding);
  };
  const hasRules = ep.rules.length > 0;
  const host = ep.host;

  if (host.includes("*")) {
    if (host === "*" || host === "**") {
      add(
        "error",
        `host wildcard '${host}' matches all hosts; use specific patterns like '*.example.com'`,
        [],
        ["host"],
      );
    } else if (!host.startsWith("*.") && !host.startsWith("**.")) {
      add(
        "error",
        `host wildcard must start with '*.' or '**.' (e.g., '*.example.com'), got '${host}'`,
        [],
        ["host"],
      );
    } else if (host.split(".").length <= 2) {
      add(
        "error",
        `TLD wildcard '${host}' is not allowed; use subdomain wildcards like '*.example.com' instead`,
        [],
        ["host"],
        true,
      );
    }
  }

  // In the proto a parsed single port is mirrored into `ports`; only a `port` outside `ports` is both.
  if (ep.port > 0 && ep.ports.length > 0 && !ep.ports.includes(ep.port)) {
    add("error", "port and ports are mutually exclusive; use ports for multiple ports", [], ["ports"]);
  }
  if (hasRules && ep.access !== "") {
    add("error", "rules and access are mutually exclusive", [], ["access"]);
  }
  if (ep.protocol !== "" && !hasRules && ep.access === "") {
    add("error", "protocol requires rules or access to define allowed traffic", [], ["protocol"]);
  }
  if (ep.tls === "terminate" || ep.tls === "passthrough") {
    add(
      "warning",
      `'tls: ${ep.tls}' is deprecated; TLS termination is now automatic. Use 'tls: skip' to disable.`,
      [],
      ["tls"],
    );
  }
  if (ep.tls === "skip" && ep.protocol !== "" && canonicalPorts(ep).includes(443)) {
    add(
      "warning",
      "'tls: skip' with L7 rules on port 443 — L7 inspection cannot work on encrypted traffic",
      [],
      ["tls"],
    );
  }
  if (ep.protocol === "sql" && ep.enforcement === "enforce") {
    add(
      "error",
      "SQL enforcement requires full SQL parsing (not available in v1). Use `enforcement: audit`.",
      [],
      ["enforcement"],
    );
  }

  if (hasRules && ep.protocol === "rest") {
    ep.rules.forEach((rule, ruleIndex) => {
      const allow = rule.allow;
      if (allow === undefined) return;
      const sub = ["rules", ruleIndex, "allow"];
      checkMethod(allow.method, add, [], [...sub, "method"]);
      checkQuery(allow.query, sub, add);
    });
  }

  if (ep.denyRules.length > 0) {
    if (ep.protocol === "") {
      add("error", "deny_rules require protocol (L7 inspection must be enabled)", [], ["deny_rules"]);
    }
    if (!hasRules && ep.access === "") {
      add("error", "deny_rules require rules or access to define the base allow set", [], ["deny_rules"]);
    }
    ep.denyRules.forEach((deny, denyIndex) => {
      const sub = ["deny_rules", denyIndex];
      if (ep.protocol === "rest") checkMethod(deny.method, add, sub, [...sub, "method"]);
      const pathWarning = checkGlobSyntax(deny.path);
      if (pathWarning !== undefined) add("warning", pathWarning, [...sub, "path"]);
      checkQuery(deny.query, sub, add);
    });
  }
}

/** `locationSub` extends upstream's message prefix; `pathSub` (default the same) locates the YAML line. */
type AddFinding = (
  severity: L7Finding["severity"],
  message: string,
  locationSub?: ReadonlyArray<string | number>,
  pathSub?: ReadonlyArray<string | number>,
  tldWildcard?: boolean,
) => void;

function checkMethod(
  method: string,
  add: AddFinding,
  locationSub: ReadonlyArray<string | number>,
  pathSub: ReadonlyArray<string | number>,
): void {
  if (method === "" || HTTP_METHODS.has(method.toUpperCase())) return;
  add(
    "warning",
    `Unknown HTTP method '${method}'. Standard methods: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS.`,
    locationSub,
    pathSub,
  );
}

function checkQuery(
  query: { [key: string]: sandboxv1.L7QueryMatcher },
  sub: ReadonlyArray<string | number>,
  add: AddFinding,
): void {
  for (const [param, matcher] of Object.entries(query)) {
    const at = [...sub, "query", param];
    if (matcher.any.length === 0) {
      const warning = checkGlobSyntax(matcher.glob);
      if (warning !== undefined) add("warning", warning, at);
      continue;
    }
    if (matcher.glob !== "") {
      add("error", "matcher cannot specify both `glob` and `any`", at);
      continue;
    }
    for (const item of matcher.any) {
      const warning = checkGlobSyntax(item);
      if (warning !== undefined) add("warning", warning, [...at, "any"]);
    }
  }
}

/** Upstream's glob sanity check: unbalanced `[]` or `{}` is worth a warning (OPA's glob.match is forgiving). */
export function checkGlobSyntax(pattern: string): string | undefined {
  for (const [open, close] of [
    ["[", "]"],
    ["{", "}"],
  ] as const) {
    let depth = 0;
    for (const char of pattern) {
      if (char === open) depth += 1;
      else if (char === close) {
        if (depth === 0) return `glob pattern '${pattern}' has unmatched '${close}'`;
        depth -= 1;
      }
    }
    if (depth > 0) return `glob pattern '${pattern}' has unclosed '${open}'`;
  }
  return undefined;
}

function formatSub(sub: ReadonlyArray<string | number>): string {
  return sub.map((segment) => (typeof segment === "number" ? `[${segment}]` : `.${segment}`)).join("");
}
