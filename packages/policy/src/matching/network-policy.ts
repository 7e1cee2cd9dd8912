import { OpenShellError } from "@openshell/core";
import type { sandboxv1 } from "@openshell/proto";
import { canonicalPorts } from "../endpoint-ports.js";
import { compileGlob, type GlobMatcher } from "./glob.js";
import { type CompiledL7Rules, compileL7Rules, L7Evaluator, type L7Mode } from "./l7-rules.js";
import { type AllowedIpList, checkAddresses, parseAllowedIps, type SsrfDecision } from "./ssrf.js";

/** The process behind a connection: its binary (`/proc/<pid>/exe`), its ancestors' and cmdline paths. */
export interface ConnectBinary {
  path: string;
  ancestors: readonly string[];
  /** Absolute paths from the cmdlines: logged in deny reasons, never a grant (argv is spoofable). */
  cmdlinePaths: readonly string[];
}

export interface ConnectRequest {
  host: string;
  port: number;
  binary: ConnectBinary;
}

/** How an endpoint's traffic is inspected once the tunnel is up. */
export type Inspection = "none" | "rest" | "sql-audit";

/** One endpoint of the policy, compiled. */
export interface CompiledEndpoint {
  /** The network_policies key of its rule (upstream's "policy" in logs and 403 bodies). */
  readonly ruleKey: string;
  /** Its rule's `name` (the key when the name is empty). */
  readonly policyName: string;
  /** Its index in the rule's `endpoints`. */
  readonly index: number;
  /** The host pattern, lower-cased, without a trailing dot; "" for a hostless `allowed_ips` endpoint. */
  readonly host: string;
  readonly ports: ReadonlySet<number>;
  /** "", "rest" or "sql", as written. */
  readonly protocol: string;
  /** `rest` gets `l7`; `sql` is an audit-only passthrough (upstream has no SQL parser); else L4 only. */
  readonly inspection: Inspection;
  /** `tls: skip`: relay raw bytes, no TLS termination, no L7. Other values auto-detect. */
  readonly tlsSkip: boolean;
  readonly enforcement: L7Mode;
  /** `allowed_ips` as written; empty when none. */
  readonly allowedIps: readonly string[];
  /** `allowed_ips` parsed (CIDRs and bare IPs); absent when none. */
  readonly allowedIpList?: AllowedIpList;
  /** The L7 evaluator for `protocol: rest` (for a connection: over every endpoint it matched). */
  readonly l7?: L7Evaluator;
  /** The endpoint as it came in the policy. */
  readonly source: sandboxv1.NetworkEndpoint;
}

/** Why a connection was refused, beside upstream's full reason. */
export type ConnectDenyKind = "no_policies" | "endpoint" | "binary";

export type ConnectDecision =
  | {
      allowed: true;
      /** The matched rule's `name`. */
      policyName: string;
      /** The matched rule's key: the smallest key whose endpoint and binary both match (upstream). */
      ruleKey: string;
      /**
       * The endpoint that configures the connection (upstream's `matched_endpoint_config`): the
       * first matching endpoint, in key then list order, with a protocol, `tls` or `allowed_ips`;
       * else the first matching endpoint of `ruleKey`.
       */
      endpoint: CompiledEndpoint;
    }
  | {
      allowed: false;
      /** Upstream's `deny_reason`: every policy's miss, endpoint misses first, joined with "; ". */
      reason: string;
      kind: ConnectDenyKind;
      /**
       * The first rule (key order) whose endpoint matched but whose binaries did not: the one to fix.
       * Absent when no endpoint matched.
       */
      ruleKey?: string;
      /** That rule's `name`. */
      policyName?: string;
    };

interface InternalEndpoint extends CompiledEndpoint {
  readonly matcher: GlobMatcher | undefined;
  /** The literal tail of a host glob after its last wildcard (`.cdn.example.com`): a cheap pre-check. */
  readonly suffix: string;
  readonly rules: CompiledL7Rules | undefined;
  readonly extended: boolean;
  readonly policyIndex: number;
  /** Position in the policy-wide list (key order, then endpoint order). */
  readonly order: number;
}

interface CompiledRule {
  readonly key: string;
  readonly name: string;
  readonly endpoints: InternalEndpoint[];
  readonly exactBinaries: ReadonlySet<string>;
  readonly globBinaries: readonly GlobMatcher[];
}

const SYMLINK_HINT =
  "SYMLINK HINT: the binary path is the kernel-resolved target from /proc/<pid>/exe, not the symlink. If your policy specifies a symlink (e.g., /usr/bin/python3) but the actual binary is /usr/bin/python3.11, either: (1) use the canonical path in your policy (run 'readlink -f /usr/bin/python3' inside the sandbox), or (2) ensure symlink resolution is working (check sandbox logs for 'Cannot access container filesystem')";

/** Lower case, without one trailing dot (`github.com.` is `github.com`). */
function normalizeHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/**
 * A `SandboxPolicy`'s network rules compiled for the egress proxy: one `evaluateConnect` per
 * connection, the endpoint's `l7.evaluateRequest` per HTTP request, `checkResolvedAddresses` after
 * DNS. Immutable; compile a new one on every policy change and swap it.
 */
export class CompiledNetworkPolicy {
  /** Warnings found while compiling (broad `allowed_ips` CIDRs). */
  readonly warnings: readonly string[];
  private readonly rules: readonly CompiledRule[];
  private readonly keys: readonly string[];
  private readonly exactHosts: Map<string, InternalEndpoint[]>;
  private readonly globEndpoints: readonly InternalEndpoint[];
  private readonly hostlessEndpoints: readonly InternalEndpoint[];
  private readonly merged = new Map<string, CompiledEndpoint>();

  /** @internal use `compileNetworkPolicy` */
  constructor(rules: CompiledRule[], warnings: string[]) {
    this.rules = rules;
    this.keys = rules.map((rule) => rule.key);
    this.warnings = Object.freeze(warnings);
    this.exactHosts = new Map();
    const globs: InternalEndpoint[] = [];
    const hostless: InternalEndpoint[] = [];
    for (const rule of rules) {
      for (const endpoint of rule.endpoints) {
        if (endpoint.host === "") {
          if (endpoint.allowedIps.length > 0) hostless.push(endpoint);
        } else if (endpoint.matcher !== undefined) {
          globs.push(endpoint);
        } else {
          const list = this.exactHosts.get(endpoint.host);
          if (list === undefined) this.exactHosts.set(endpoint.host, [endpoint]);
          else list.push(endpoint);
        }
      }
    }
    this.globEndpoints = globs;
    this.hostlessEndpoints = hostless;
  }

  /** The rule keys, in the order upstream evaluates them (sorted). */
  get ruleKeys(): string[] {
    return [...this.keys];
  }

  /**
   * The L4 decision for one connection, as upstream's rego: an endpoint matches on host (exact,
   * case-insensitive; or a `.`-delimited glob; or any host for a hostless endpoint with
   * `allowed_ips`) and port; a binary on exact path (the exe or any ancestor) or `/`-delimited glob
   * (same candidates); cmdline paths never grant. Allowed when one rule matches both.
   */
  evaluateConnect(request: ConnectRequest): ConnectDecision {
    const rules = this.rules;
    if (rules.length === 0) {
      return { allowed: false, reason: "network connections not allowed by policy", kind: "no_policies" };
    }
    const host = normalizeHost(request.host);
    const port = request.port;
    const matching = this.matchingEndpoints(host, port);

    // Which rules have an endpoint match, and which of those a binary match (ascending rule index).
    let matchedRule = -1;
    let firstBinaryMiss = -1;
    let extended: InternalEndpoint | undefined;
    let firstOfMatched: InternalEndpoint | undefined;
    let l7Count = 0;
    let l7Only: InternalEndpoint | undefined;
    let checkedRule = -1;
    let checkedResult = false;
    for (const endpoint of matching) {
      if (endpoint.policyIndex !== checkedRule) {
        checkedRule = endpoint.policyIndex;
        checkedResult = binaryAllowed(rules[checkedRule] as CompiledRule, request.binary);
        if (!checkedResult && firstBinaryMiss < 0) firstBinaryMiss = checkedRule;
      }
      if (!checkedResult) continue;
      if (matchedRule < 0) {
        matchedRule = checkedRule;
        firstOfMatched = endpoint;
      }
      if (extended === undefined && endpoint.extended) extended = endpoint;
      if (
        endpoint.rules !== undefined &&
        (endpoint.rules.allow.length > 0 || endpoint.rules.deny.length > 0)
      ) {
        l7Count += 1;
        l7Only = endpoint;
      }
    }

    if (matchedRule >= 0) {
      const rule = rules[matchedRule] as CompiledRule;
      let selected: CompiledEndpoint = extended ?? (firstOfMatched as InternalEndpoint);
      if (selected.inspection === "rest" && l7Count > 0 && !(l7Count === 1 && l7Only === selected)) {
        selected = this.mergedEndpoint(selected as InternalEndpoint, matching, request.binary);
      }
      return { allowed: true, policyName: rule.name, ruleKey: rule.key, endpoint: selected };
    }
    return this.denial(request, matching, firstBinaryMiss);
  }

  /**
   * The SSRF guard after DNS for an allowed connection (`endpoint` from its decision): see
   * `checkAddresses`. Upstream's reasons; `kind` picks the 403 body (`ssrfDeniedBody`).
   */
  checkResolvedAddresses(
    endpoint: CompiledEndpoint | undefined,
    host: string,
    port: number,
    addresses: readonly string[],
  ): SsrfDecision {
    return checkResolvedAddresses(endpoint, host, port, addresses);
  }

  /** Matching endpoints in policy order (rule key, then endpoint index). */
  private matchingEndpoints(host: string, port: number): InternalEndpoint[] {
    const out: InternalEndpoint[] = [];
    const exact = this.exactHosts.get(host);
    if (exact !== undefined) for (const endpoint of exact) if (endpoint.ports.has(port)) out.push(endpoint);
    let unsorted = false;
    for (const endpoint of this.globEndpoints) {
      if (
        endpoint.ports.has(port) &&
        host.endsWith(endpoint.suffix) &&
        (endpoint.matcher as GlobMatcher).test(host)
      ) {
        out.push(endpoint);
        unsorted = true;
      }
    }
    for (const endpoint of this.hostlessEndpoints) {
      if (endpoint.ports.has(port)) {
        out.push(endpoint);
        unsorted = true;
      }
    }
    if (unsorted && out.length > 1) out.sort((a, b) => a.order - b.order);
    return out;
  }

  private denial(
    request: ConnectRequest,
    matching: InternalEndpoint[],
    firstBinaryMiss: number,
  ): ConnectDecision {
    const prefix = `endpoint ${request.host}:${request.port} not in policy '`;
    if (matching.length === 0) {
      // The common denial: one join over the keys rather than a string per rule.
      return { allowed: false, reason: `${prefix}${this.keys.join(`'; ${prefix}`)}'`, kind: "endpoint" };
    }
    const endpointRules = new Set<number>();
    for (const endpoint of matching) endpointRules.add(endpoint.policyIndex);
    const endpointMisses: string[] = [];
    const binaryMisses: string[] = [];
    const binaryMiss = `binary '${request.binary.path}' not allowed in policy '`;
    const context = `' (ancestors: [${request.binary.ancestors.join(" -> ")}], cmdline: [${request.binary.cmdlinePaths.join(", ")}]). ${SYMLINK_HINT}`;
    for (let index = 0; index < this.keys.length; index += 1) {
      const key = this.keys[index] as string;
      if (endpointRules.has(index)) binaryMisses.push(binaryMiss + key + context);
      else endpointMisses.push(`${prefix}${key}'`);
    }
    const reason = endpointMisses.concat(binaryMisses).join("; ");
    const rule = this.rules[firstBinaryMiss] as CompiledRule;
    return { allowed: false, reason, kind: "binary", ruleKey: rule.key, policyName: rule.name };
  }

  /** The selected endpoint with an L7 evaluator over the rules of every endpoint the connection matched. */
  private mergedEndpoint(
    selected: InternalEndpoint,
    matching: InternalEndpoint[],
    binary: ConnectBinary,
  ): CompiledEndpoint {
    const contributing = matching.filter(
      (endpoint) =>
        endpoint.rules !== undefined &&
        binaryAllowed(this.rules[endpoint.policyIndex] as CompiledRule, binary),
    );
    const key = `${selected.order}:${contributing.map((endpoint) => endpoint.order).join(",")}`;
    const cached = this.merged.get(key);
    if (cached !== undefined) return cached;
    const l7 = new L7Evaluator(
      selected.enforcement,
      selected.source.allowEncodedSlash,
      contributing.map((endpoint) => endpoint.rules as CompiledL7Rules),
    );
    const merged: CompiledEndpoint = Object.freeze({ ...publicView(selected), l7 });
    this.merged.set(key, merged);
    return merged;
  }
}

function publicView(endpoint: InternalEndpoint): CompiledEndpoint {
  const {
    ruleKey,
    policyName,
    index,
    host,
    ports,
    protocol,
    inspection,
    tlsSkip,
    enforcement,
    allowedIps,
    source,
  } = endpoint;
  const view: { -readonly [K in keyof CompiledEndpoint]: CompiledEndpoint[K] } = {
    ruleKey,
    policyName,
    index,
    host,
    ports,
    protocol,
    inspection,
    tlsSkip,
    enforcement,
    allowedIps,
    source,
  };
  if (endpoint.allowedIpList !== undefined) view.allowedIpList = endpoint.allowedIpList;
  if (endpoint.l7 !== undefined) view.l7 = endpoint.l7;
  return view;
}

/** The part of a glob after its last metacharacter (nothing when the glob ends in one). */
function literalSuffix(glob: string): string {
  let start = glob.length;
  while (start > 0 && !"*?[]{}\\".includes(glob[start - 1] as string)) start -= 1;
  return glob.slice(start);
}

function binaryAllowed(rule: CompiledRule, binary: ConnectBinary): boolean {
  const exact = rule.exactBinaries;
  if (exact.size > 0) {
    if (exact.has(binary.path)) return true;
    for (const ancestor of binary.ancestors) if (exact.has(ancestor)) return true;
  }
  for (const glob of rule.globBinaries) {
    if (glob.test(binary.path)) return true;
    for (const ancestor of binary.ancestors) if (glob.test(ancestor)) return true;
  }
  return false;
}

/**
 * The SSRF guard after DNS (upstream `resolve_and_check_allowed_ips` / `resolve_and_reject_internal`)
 * for the endpoint an allowed connection selected: internal addresses are refused unless the
 * endpoint's `allowed_ips` (or, without any, a literal-IP `host` itself) covers them; loopback,
 * link-local and unspecified always; with an allowlist, control-plane ports always.
 */
export function checkResolvedAddresses(
  endpoint: CompiledEndpoint | undefined,
  host: string,
  port: number,
  addresses: readonly string[],
): SsrfDecision {
  return checkAddresses(endpoint?.allowedIpList, host, port, addresses);
}

/**
 * Compiles a policy's `network_policies` once. Throws `invalid_argument` naming every problem: an
 * invalid glob (host, binary, path or query), an invalid `allowed_ips` entry or one overlapping
 * loopback/link-local/unspecified (upstream refuses those at load).
 */
export function compileNetworkPolicy(policy: sandboxv1.SandboxPolicy): CompiledNetworkPolicy {
  const problems: string[] = [];
  const warnings: string[] = [];
  const keys = Object.keys(policy.networkPolicies).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const rules: CompiledRule[] = [];
  let order = 0;
  keys.forEach((key, policyIndex) => {
    const rule = policy.networkPolicies[key] as sandboxv1.NetworkPolicyRule;
    const name = rule.name === "" ? key : rule.name;
    const at = `network_policies.${key}`;
    const attempt = <T>(where: string, make: () => T): T | undefined => {
      try {
        return make();
      } catch (error) {
        problems.push(`${where}: ${error instanceof Error ? error.message : String(error)}`);
        return undefined;
      }
    };
    const endpoints: InternalEndpoint[] = [];
    rule.endpoints.forEach((source, index) => {
      const where = `${at}.endpoints[${index}]`;
      const host = normalizeHost(source.host);
      const matcher = host.includes("*")
        ? attempt(`${where}.host`, () => compileGlob(host, "host"))
        : undefined;
      let allowedIpList: AllowedIpList | undefined;
      if (source.allowedIps.length > 0) {
        const parsed = parseAllowedIps(source.allowedIps);
        for (const error of parsed.errors) problems.push(`${where}.allowed_ips: ${error}`);
        for (const warning of parsed.warnings) warnings.push(`${where}.allowed_ips: ${warning}`);
        allowedIpList = parsed.list;
      }
      const protocol = source.protocol;
      const inspection: Inspection = protocol === "rest" ? "rest" : protocol === "sql" ? "sql-audit" : "none";
      const rules = attempt(`${where}.rules`, () => compileL7Rules(source));
      const enforcement: L7Mode = source.enforcement === "enforce" ? "enforce" : "audit";
      const base = {
        ruleKey: key,
        policyName: name,
        index,
        host,
        ports: new Set(canonicalPorts(source)),
        protocol,
        inspection,
        tlsSkip: source.tls === "skip",
        enforcement,
        allowedIps: Object.freeze([...source.allowedIps]),
        source,
        matcher,
        suffix: matcher === undefined ? "" : literalSuffix(host),
        rules,
        extended: protocol !== "" || source.tls !== "" || source.allowedIps.length > 0,
        policyIndex,
        order: order++,
      };
      const l7 =
        inspection === "rest" && rules !== undefined
          ? new L7Evaluator(enforcement, source.allowEncodedSlash, [rules])
          : undefined;
      const withIps = allowedIpList === undefined ? base : { ...base, allowedIpList };
      endpoints.push(Object.freeze(l7 === undefined ? withIps : { ...withIps, l7 }));
    });
    const exactBinaries = new Set<string>();
    const globBinaries: GlobMatcher[] = [];
    rule.binaries.forEach((binary, index) => {
      if (!binary.path.includes("*")) {
        exactBinaries.add(binary.path);
        return;
      }
      const glob = attempt(`${at}.binaries[${index}].path`, () => compileGlob(binary.path, "path"));
      if (glob !== undefined) globBinaries.push(glob);
    });
    rules.push({ key, name, endpoints, exactBinaries, globBinaries });
  });
  if (problems.length > 0) {
    throw new OpenShellError("invalid_argument", `network policy does not compile: ${problems.join("; ")}`);
  }
  return new CompiledNetworkPolicy(rules, warnings);
}
