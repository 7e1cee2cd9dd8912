import { create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import {
  AddAllowRulesSchema,
  AddDenyRulesSchema,
  AddNetworkRuleSchema,
  type PolicyMergeOperation,
  PolicyMergeOperationSchema,
  RemoveNetworkEndpointSchema,
  RemoveNetworkRuleSchema,
  sandboxv1,
} from "@openshell/proto";
import { ACCESS_PRESETS } from "./access-presets.js";

/** A parsed `--add-allow` / `--add-deny` value, `host:port:METHOD:path_glob`. */
export type RuleSpec = { host: string; port: number; method: string; path: string };

/** `allow_<host with . and - as _, other non-alphanumerics dropped>_<port>`, upstream's generated rule name. */
export function generatedRuleName(host: string, port: number): string {
  const sanitized = Array.from(host.replace(/[.-]/g, "_"))
    .filter((char) => char === "_" || /[\p{L}\p{N}]/u.test(char))
    .join("");
  return `allow_${sanitized}_${port}`;
}

/** `--add-endpoint host:port[:access[:protocol[:enforcement]]]` as an endpoint; `invalid_argument` with upstream's messages. */
export function parseAddEndpointSpec(spec: string): sandboxv1.NetworkEndpoint {
  const flag = "--add-endpoint";
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 5) {
    throw invalid(`${flag} expects host:port[:access[:protocol[:enforcement]]], got '${spec}'`);
  }
  const host = parseHost(flag, spec, parts[0] as string);
  const port = parsePort(flag, spec, parts[1] as string);
  const access = (parts[2] ?? "").trim();
  const protocol = (parts[3] ?? "").trim();
  const enforcement = (parts[4] ?? "").trim();
  if (parts.length === 3 && access === "") {
    throw invalid(
      `${flag} has an empty access segment in '${spec}'; omit it entirely if you do not need access or protocol fields`,
    );
  }
  if (enforcement !== "" && protocol === "") {
    throw invalid(`${flag} cannot set enforcement without protocol in '${spec}'`);
  }
  if (access !== "" && !ACCESS_PRESETS.includes(access)) {
    throw invalid(
      `${flag} access segment must be one of read-only, read-write, or full; got '${access}' in '${spec}'`,
    );
  }
  if (protocol !== "" && protocol !== "rest" && protocol !== "sql") {
    throw invalid(`${flag} protocol segment must be 'rest' or 'sql'; got '${protocol}' in '${spec}'`);
  }
  if (enforcement !== "" && enforcement !== "enforce" && enforcement !== "audit") {
    throw invalid(
      `${flag} enforcement segment must be 'enforce' or 'audit'; got '${enforcement}' in '${spec}'`,
    );
  }
  return create(sandboxv1.NetworkEndpointSchema, {
    host,
    port,
    ports: [port],
    protocol,
    enforcement,
    access,
  });
}

/** `--remove-endpoint host:port`. */
export function parseRemoveEndpointSpec(spec: string): { host: string; port: number } {
  const flag = "--remove-endpoint";
  const parts = spec.split(":");
  if (parts.length !== 2) throw invalid(`${flag} expects host:port, got '${spec}'`);
  return { host: parseHost(flag, spec, parts[0] as string), port: parsePort(flag, spec, parts[1] as string) };
}

/** `--add-allow` / `--add-deny` `host:port:METHOD:path_glob`; the method is upper-cased. */
export function parseRuleSpec(spec: string, flag = "--add-allow"): RuleSpec {
  const parts = spec.split(":");
  if (parts.length !== 4) throw invalid(`${flag} expects host:port:METHOD:path_glob, got '${spec}'`);
  const host = parseHost(flag, spec, parts[0] as string);
  const port = parsePort(flag, spec, parts[1] as string);
  const method = (parts[2] as string).trim();
  if (method === "") throw invalid(`${flag} has an empty METHOD segment in '${spec}'`);
  if (/\s/.test(method)) throw invalid(`${flag} METHOD must not contain whitespace in '${spec}'`);
  const path = (parts[3] as string).trim();
  if (path === "") throw invalid(`${flag} has an empty path segment in '${spec}'`);
  if (!path.startsWith("/") && path !== "**" && !path.startsWith("**/")) {
    throw invalid(`${flag} path must start with '/' or be '**', got '${path}' in '${spec}'`);
  }
  return { host, port, method: method.toUpperCase(), path };
}

/** The flags of `openshell policy update`. */
export type PolicyUpdateFlags = {
  addEndpoints?: readonly string[];
  removeEndpoints?: readonly string[];
  addDeny?: readonly string[];
  addAllow?: readonly string[];
  removeRules?: readonly string[];
  binaries?: readonly string[];
  ruleName?: string;
};

/**
 * Upstream's `build_policy_update_plan`: the merge operations `policy update` sends, in upstream's
 * order (add-endpoint, remove-endpoint, remove-rule, add-allow then add-deny grouped by host:port).
 */
export function buildPolicyUpdatePlan(flags: PolicyUpdateFlags): PolicyMergeOperation[] {
  const addEndpoints = flags.addEndpoints ?? [];
  const binaries = flags.binaries ?? [];
  if (binaries.some((binary) => binary.trim() === "")) throw invalid("--binary values must not be empty");
  if (binaries.length > 0 && addEndpoints.length === 0)
    throw invalid("--binary can only be used with --add-endpoint");
  if (flags.ruleName !== undefined && addEndpoints.length === 0) {
    throw invalid("--rule-name can only be used with --add-endpoint");
  }
  if (flags.ruleName !== undefined && addEndpoints.length > 1) {
    throw invalid("--rule-name is only supported when exactly one --add-endpoint is provided");
  }

  const operations: PolicyMergeOperation[] = [];
  const op = (operation: PolicyMergeOperation["operation"]) =>
    operations.push(create(PolicyMergeOperationSchema, { operation }));
  const paths = [...new Set(binaries.map((binary) => binary.trim()))];
  for (const spec of addEndpoints) {
    const endpoint = parseAddEndpointSpec(spec);
    const requested = flags.ruleName?.trim() ?? "";
    const ruleName = requested === "" ? generatedRuleName(endpoint.host, endpoint.port) : requested;
    const rule = create(sandboxv1.NetworkPolicyRuleSchema, {
      name: ruleName,
      endpoints: [endpoint],
      binaries: paths.map((path) => ({ path })),
    });
    op({ case: "addRule", value: create(AddNetworkRuleSchema, { ruleName, rule }) });
  }
  for (const spec of flags.removeEndpoints ?? []) {
    const { host, port } = parseRemoveEndpointSpec(spec);
    op({ case: "removeEndpoint", value: create(RemoveNetworkEndpointSchema, { ruleName: "", host, port }) });
  }
  for (const name of flags.removeRules ?? []) {
    const ruleName = name.trim();
    if (ruleName === "") throw invalid("--remove-rule values must not be empty");
    op({ case: "removeRule", value: create(RemoveNetworkRuleSchema, { ruleName }) });
  }
  for (const [key, specs] of groupByEndpoint(flags.addAllow ?? [], "--add-allow")) {
    const [host, port] = splitKey(key);
    const rules = specs.map((spec) => ({ allow: { method: spec.method, path: spec.path } }));
    op({ case: "addAllowRules", value: create(AddAllowRulesSchema, { host, port, rules }) });
  }
  for (const [key, specs] of groupByEndpoint(flags.addDeny ?? [], "--add-deny")) {
    const [host, port] = splitKey(key);
    const denyRules = specs.map((spec) => ({ method: spec.method, path: spec.path }));
    op({ case: "addDenyRules", value: create(AddDenyRulesSchema, { host, port, denyRules }) });
  }
  if (operations.length === 0) throw invalid("policy update requires at least one operation flag");
  return operations;
}

/** Groups rule specs by (host, port) in upstream's BTreeMap order (host, then port). */
function groupByEndpoint(specs: readonly string[], flag: string): Array<[string, RuleSpec[]]> {
  const groups = new Map<string, RuleSpec[]>();
  for (const text of specs) {
    const spec = parseRuleSpec(text, flag);
    const key = `${spec.host}\u0000${spec.port}`;
    groups.set(key, [...(groups.get(key) ?? []), spec]);
  }
  return [...groups.entries()].sort(([a], [b]) => {
    const [hostA, portA] = splitKey(a);
    const [hostB, portB] = splitKey(b);
    return hostA < hostB ? -1 : hostA > hostB ? 1 : portA - portB;
  });
}

function splitKey(key: string): [string, number] {
  const [host, port] = key.split("\u0000");
  return [host as string, Number(port)];
}

function parseHost(flag: string, spec: string, raw: string): string {
  const host = raw.trim();
  if (host === "") throw invalid(`${flag} has an empty host segment in '${spec}'`);
  if (/\s/.test(host)) throw invalid(`${flag} host must not contain whitespace in '${spec}'`);
  if (host.includes("/")) throw invalid(`${flag} host must not contain '/' in '${spec}'`);
  return host;
}

function parsePort(flag: string, spec: string, raw: string): number {
  const text = raw.trim();
  if (text === "") throw invalid(`${flag} has an empty port segment in '${spec}'`);
  if (!/^\+?\d+$/.test(text))
    throw invalid(`${flag} port segment must be a base-10 integer, got '${text}' in '${spec}'`);
  const port = Number(text);
  if (port === 0 || port > 65535) {
    throw invalid(`${flag} port must be in the range 1-65535, got '${port}' in '${spec}'`);
  }
  return port;
}

function invalid(message: string): OpenShellError {
  return new OpenShellError("invalid_argument", message);
}
