import type { sandboxv1 } from "@openshell/proto";
import { expandAccessPreset } from "../access-presets.js";
import { compileGlob, type GlobMatcher } from "./glob.js";
import { canonicalizeRequestTarget, parseQuery } from "./request-target.js";

/** `enforce` answers a denied request with a 403; `audit` (the default) logs it and forwards it. */
export type L7Mode = "enforce" | "audit";

/** One HTTP request on an inspected connection: the method and the request-target as sent. */
export interface L7Request {
  method: string;
  target: string;
}

/**
 * The L7 verdict on one request. `allowed` is the policy's answer; `forward` is what the proxy
 * does: in `audit` mode a request the rules do not allow is still forwarded (and logged), so
 * `allowed: false, forward: true` is an audit-mode denial. A request-target that cannot be
 * canonicalised is never forwarded, in either mode.
 */
export interface L7Decision {
  allowed: boolean;
  forward: boolean;
  mode: L7Mode;
  /** The rule that decided, as `METHOD path-glob`: the allow rule that matched, or the deny rule. */
  rule?: string;
  /** Why the request was not allowed, in upstream's words. */
  reason?: string;
  /** The canonical path the rules saw; the proxy forwards this path (with the original query). */
  canonicalPath?: string;
  /** The query as sent (without `?`), when there was one. */
  query?: string;
}

type QueryMatcher = { kind: "glob"; glob: GlobMatcher } | { kind: "any"; globs: GlobMatcher[] };

interface CompiledRule {
  /** Upper-case method, or `*`. */
  method: string;
  path: GlobMatcher;
  query: ReadonlyArray<readonly [name: string, matcher: QueryMatcher]>;
  text: string;
}

/** The allow and deny rules of one or more endpoints, compiled. */
export interface CompiledL7Rules {
  allow: CompiledRule[];
  deny: CompiledRule[];
}

/** Compiles an endpoint's REST rules: `rules`, else its `access` preset; and its `deny_rules`. */
export function compileL7Rules(endpoint: sandboxv1.NetworkEndpoint): CompiledL7Rules {
  const allow: CompiledRule[] = [];
  for (const rule of expandAccessPreset(endpoint)) {
    const compiled = rule.allow === undefined ? undefined : compileRule(rule.allow);
    if (compiled !== undefined) allow.push(compiled);
  }
  const deny: CompiledRule[] = [];
  for (const rule of endpoint.denyRules) {
    const compiled = compileRule(rule);
    if (compiled !== undefined) deny.push(compiled);
  }
  return { allow, deny };
}

/** A REST rule; undefined for a rule without a method (a SQL `command` rule), which REST never matches. */
function compileRule(rule: {
  method: string;
  path: string;
  query: { [key: string]: sandboxv1.L7QueryMatcher };
}): CompiledRule | undefined {
  if (rule.method === "") return undefined;
  const query = Object.entries(rule.query)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, matcher]): readonly [string, QueryMatcher] =>
      matcher.any.length > 0
        ? [name, { kind: "any", globs: matcher.any.map((glob) => compileGlob(glob, "query")) }]
        : [name, { kind: "glob", glob: compileGlob(matcher.glob, "query") }],
    );
  return {
    method: rule.method === "*" ? "*" : rule.method.toUpperCase(),
    path: compileGlob(rule.path, "path"),
    query,
    text: `${rule.method} ${rule.path}`,
  };
}

function matchesRequest(rule: CompiledRule, method: string, path: string): boolean {
  return (rule.method === "*" || rule.method === method) && rule.path.test(path);
}

function valueMatches(matcher: QueryMatcher, value: string): boolean {
  return matcher.kind === "glob" ? matcher.glob.test(value) : matcher.globs.some((glob) => glob.test(value));
}

/** The request's query parameters, parsed on first use (most rules have no query matchers). */
class LazyParams {
  private parsed: Map<string, string[]> | undefined;
  constructor(private readonly query: string | undefined) {}
  get(name: string): string[] | undefined {
    this.parsed ??= parseQuery(this.query);
    return this.parsed.get(name);
  }
}

/** Allow side: every configured name present, and every one of its values matching. */
function allowQueryMatches(rule: CompiledRule, params: LazyParams): boolean {
  for (const [name, matcher] of rule.query) {
    const values = params.get(name);
    if (values === undefined || values.length === 0) return false;
    for (const value of values) if (!valueMatches(matcher, value)) return false;
  }
  return true;
}

/** Deny side (fail closed): every configured name present, and for each at least one value matching. */
function denyQueryMatches(rule: CompiledRule, params: LazyParams): boolean {
  for (const [name, matcher] of rule.query) {
    const values = params.get(name);
    if (values === undefined || values.length === 0) return false;
    if (!values.some((value) => valueMatches(matcher, value))) return false;
  }
  return true;
}

/**
 * The L7 evaluator of an inspected (`protocol: rest`) connection: the rules of every endpoint that
 * matched the connection (upstream's allow is a union over them, and any matching deny rule wins),
 * with the enforcement mode and the encoded-slash choice of the endpoint the connection selected.
 */
export class L7Evaluator {
  readonly mode: L7Mode;
  readonly allowEncodedSlash: boolean;
  private readonly allow: readonly CompiledRule[];
  private readonly deny: readonly CompiledRule[];

  constructor(mode: L7Mode, allowEncodedSlash: boolean, rules: readonly CompiledL7Rules[]) {
    this.mode = mode;
    this.allowEncodedSlash = allowEncodedSlash;
    this.allow = rules.flatMap((set) => set.allow);
    this.deny = rules.flatMap((set) => set.deny);
  }

  /**
   * Decides one request: canonicalise the target, then the allow rules (method case-insensitive or
   * `*`, path glob, query matchers), then the deny rules, which win.
   */
  evaluateRequest(request: L7Request): L7Decision {
    const canonical = canonicalizeRequestTarget(request.target, this.allowEncodedSlash);
    if (!canonical.ok) return { allowed: false, forward: false, mode: this.mode, reason: canonical.error };
    const { path, query } = canonical;
    const method = request.method.toUpperCase();
    const params = new LazyParams(query);
    const base = query === undefined ? { canonicalPath: path } : { canonicalPath: path, query };

    for (const rule of this.deny) {
      if (matchesRequest(rule, method, path) && denyQueryMatches(rule, params)) {
        return {
          allowed: false,
          forward: this.mode === "audit",
          mode: this.mode,
          rule: rule.text,
          reason: `${request.method} ${path} blocked by deny rule`,
          ...base,
        };
      }
    }
    for (const rule of this.allow) {
      if (matchesRequest(rule, method, path) && allowQueryMatches(rule, params)) {
        return { allowed: true, forward: true, mode: this.mode, rule: rule.text, ...base };
      }
    }
    return {
      allowed: false,
      forward: this.mode === "audit",
      mode: this.mode,
      reason: `${request.method} ${path} not permitted by policy`,
      ...base,
    };
  }
}
