import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { type Document, isAlias, isMap, isScalar, isSeq, type LineCounter, type Node } from "yaml";
import type { PolicyIssue } from "./policy-issue.js";

type Path = ReadonlyArray<string | number>;
type Entries = Map<string, unknown>;

/** A problem found while reading, with the line of the node it is about. */
export type LocatedIssue = PolicyIssue & { line: number | undefined };

const POLICY_FIELDS = ["version", "filesystem_policy", "landlock", "process", "network_policies"] as const;
const FILESYSTEM_FIELDS = ["include_workdir", "read_only", "read_write"] as const;
const LANDLOCK_FIELDS = ["compatibility"] as const;
const PROCESS_FIELDS = ["run_as_user", "run_as_group"] as const;
const RULE_FIELDS = ["name", "endpoints", "binaries"] as const;
const ENDPOINT_FIELDS = [
  "host",
  "port",
  "ports",
  "protocol",
  "tls",
  "enforcement",
  "access",
  "rules",
  "allowed_ips",
  "deny_rules",
  "allow_encoded_slash",
] as const;
const L7_RULE_FIELDS = ["allow"] as const;
const MATCH_FIELDS = ["method", "path", "command", "query"] as const;
const QUERY_ANY_FIELDS = ["any"] as const;
const BINARY_FIELDS = ["path", "harness"] as const;

/**
 * Reads a parsed YAML document into a `SandboxPolicy` with upstream's schema (serde with
 * `deny_unknown_fields`): unknown fields, wrong types, missing required fields and both `port` and
 * `ports` are issues located by path and line. A single `port` becomes `ports: [port]` (with
 * `port` mirroring it), an omitted rule `name` becomes its key.
 */
export class PolicyYamlReader {
  readonly issues: LocatedIssue[] = [];

  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  read(): sandboxv1.SandboxPolicy {
    const policy = create(sandboxv1.SandboxPolicySchema);
    const root = this.fields(this.doc.contents, [], POLICY_FIELDS, ["version"]);
    if (root === undefined) return policy;
    policy.version = this.integer(root.get("version"), ["version"], 0xffffffff) ?? 0;

    const fs = this.fields(root.get("filesystem_policy"), ["filesystem_policy"], FILESYSTEM_FIELDS);
    if (fs !== undefined) {
      policy.filesystem = create(sandboxv1.FilesystemPolicySchema, {
        includeWorkdir:
          this.bool(fs.get("include_workdir"), ["filesystem_policy", "include_workdir"]) ?? false,
        readOnly: this.strings(fs.get("read_only"), ["filesystem_policy", "read_only"]),
        readWrite: this.strings(fs.get("read_write"), ["filesystem_policy", "read_write"]),
      });
    }
    const landlock = this.fields(root.get("landlock"), ["landlock"], LANDLOCK_FIELDS);
    if (landlock !== undefined) {
      policy.landlock = create(sandboxv1.LandlockPolicySchema, {
        compatibility: this.string(landlock.get("compatibility"), ["landlock", "compatibility"]) ?? "",
      });
    }
    const process = this.fields(root.get("process"), ["process"], PROCESS_FIELDS);
    if (process !== undefined) {
      policy.process = create(sandboxv1.ProcessPolicySchema, {
        runAsUser: this.string(process.get("run_as_user"), ["process", "run_as_user"]) ?? "",
        runAsGroup: this.string(process.get("run_as_group"), ["process", "run_as_group"]) ?? "",
      });
    }
    const rules = this.keyed(root.get("network_policies"), ["network_policies"]);
    for (const [key, node] of rules) {
      const rule = this.rule(node, ["network_policies", key], key);
      if (rule !== undefined) policy.networkPolicies[key] = rule;
    }
    return policy;
  }

  /** The line (1-based) of the node at `path`, else of its nearest ancestor present in the document. */
  lineAt(path: Path): number | undefined {
    for (let length = path.length; length >= 0; length -= 1) {
      const node = this.doc.getIn(path.slice(0, length), true);
      const line = this.lineOf(node);
      if (line !== undefined) return line;
    }
    return undefined;
  }

  private rule(node: unknown, path: Path, key: string): sandboxv1.NetworkPolicyRule | undefined {
    const fields = this.fields(node, path, RULE_FIELDS, [], true);
    if (fields === undefined) return undefined;
    const name = this.string(fields.get("name"), [...path, "name"]) ?? "";
    const endpoints = this.list(fields.get("endpoints"), [...path, "endpoints"]).flatMap((item, index) => {
      const endpoint = this.endpoint(item, [...path, "endpoints", index]);
      return endpoint === undefined ? [] : [endpoint];
    });
    const binaries = this.list(fields.get("binaries"), [...path, "binaries"]).flatMap((item, index) => {
      const at = [...path, "binaries", index];
      const binary = this.fields(item, at, BINARY_FIELDS, ["path"], true);
      if (binary === undefined) return [];
      this.bool(binary.get("harness"), [...at, "harness"]); // deprecated and ignored, but still typed
      return [
        create(sandboxv1.NetworkBinarySchema, {
          path: this.string(binary.get("path"), [...at, "path"]) ?? "",
        }),
      ];
    });
    return create(sandboxv1.NetworkPolicyRuleSchema, { name: name === "" ? key : name, endpoints, binaries });
  }

  private endpoint(node: unknown, path: Path): sandboxv1.NetworkEndpoint | undefined {
    const fields = this.fields(node, path, ENDPOINT_FIELDS, [], true);
    if (fields === undefined) return undefined;
    const text = (field: string) => this.string(fields.get(field), [...path, field]) ?? "";
    const port = this.integer(fields.get("port"), [...path, "port"], 65535) ?? 0;
    const ports = this.list(fields.get("ports"), [...path, "ports"]).flatMap((item, index) => {
      const value = this.integer(item, [...path, "ports", index], 65535);
      return value === undefined ? [] : [value];
    });
    if (port > 0 && ports.length > 0) {
      this.issue([...path, "ports"], "port and ports are mutually exclusive; use ports for multiple ports");
    }
    const normalized = ports.length > 0 ? ports : port > 0 ? [port] : [];
    const rulesNode = fields.get("rules");
    const rules = this.list(rulesNode, [...path, "rules"]).flatMap((item, index) => {
      const at = [...path, "rules", index];
      const rule = this.fields(item, at, L7_RULE_FIELDS, ["allow"], true);
      const allow = rule === undefined ? undefined : this.match(rule.get("allow"), [...at, "allow"]);
      return allow === undefined ? [] : [create(sandboxv1.L7RuleSchema, { allow })];
    });
    if (isSeq(this.resolve(rulesNode)) && rules.length === 0 && this.resolvedItems(rulesNode).length === 0) {
      this.issue(
        [...path, "rules"],
        "rules list cannot be empty (would deny all traffic). Use `access: full` or remove rules.",
      );
    }
    const denyRules = this.list(fields.get("deny_rules"), [...path, "deny_rules"]).flatMap((item, index) => {
      const deny = this.match(item, [...path, "deny_rules", index]);
      return deny === undefined ? [] : [create(sandboxv1.L7DenyRuleSchema, deny)];
    });
    return create(sandboxv1.NetworkEndpointSchema, {
      host: text("host"),
      port: normalized[0] ?? 0,
      ports: normalized,
      protocol: text("protocol"),
      tls: text("tls"),
      enforcement: text("enforcement"),
      access: text("access"),
      rules,
      allowedIps: this.strings(fields.get("allowed_ips"), [...path, "allowed_ips"]),
      denyRules,
      allowEncodedSlash:
        this.bool(fields.get("allow_encoded_slash"), [...path, "allow_encoded_slash"]) ?? false,
    });
  }

  /** An allow or deny matcher: method, path, command, query. */
  private match(
    node: unknown,
    path: Path,
  ):
    | { method: string; path: string; command: string; query: { [key: string]: sandboxv1.L7QueryMatcher } }
    | undefined {
    const fields = this.fields(node, path, MATCH_FIELDS, [], true);
    if (fields === undefined) return undefined;
    const query: { [key: string]: sandboxv1.L7QueryMatcher } = {};
    for (const [param, value] of this.keyed(fields.get("query"), [...path, "query"])) {
      const at = [...path, "query", param];
      const resolved = this.resolve(value);
      if (isMap(resolved)) {
        const any = this.fields(resolved, at, QUERY_ANY_FIELDS);
        query[param] = create(sandboxv1.L7QueryMatcherSchema, {
          any: this.strings(any?.get("any"), [...at, "any"]),
        });
      } else {
        const glob = this.string(value, at, "expected a glob string or a mapping with `any`");
        if (glob !== undefined) query[param] = create(sandboxv1.L7QueryMatcherSchema, { glob });
      }
    }
    return {
      method: this.string(fields.get("method"), [...path, "method"]) ?? "",
      path: this.string(fields.get("path"), [...path, "path"]) ?? "",
      command: this.string(fields.get("command"), [...path, "command"]) ?? "",
      query,
    };
  }

  // --- typed accessors: undefined (or empty) for an absent or null value, an issue for a wrong type ---

  /**
   * A mapping with a fixed set of fields. An absent section is fine (`undefined`) unless `present`
   * (list items, rule bodies): serde refuses a null where a struct is expected.
   */
  private fields(
    node: unknown,
    path: Path,
    allowed: readonly string[],
    required: readonly string[] = [],
    present = false,
  ) {
    const resolved = this.resolve(node);
    if (isAbsent(resolved)) {
      if (path.length === 0) this.missing(path, required);
      else if (present) this.issue(path, "expected a mapping, found nothing", resolved);
      return undefined;
    }
    if (!isMap(resolved)) {
      this.issue(path, `expected a mapping, found ${describe(resolved)}`, resolved);
      return undefined;
    }
    const entries: Entries = new Map();
    for (const pair of resolved.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) {
        this.issue(path, "mapping keys must be plain scalars", pair.key);
        continue;
      }
      if (!allowed.includes(key)) {
        this.issue(
          [...path, key],
          `unknown field \`${key}\`, expected ${allowed.length === 1 ? "" : "one of "}${allowed.map((f) => `\`${f}\``).join(", ")}`,
          pair.key,
        );
        continue;
      }
      entries.set(key, pair.value);
    }
    for (const field of required) {
      if (isAbsent(this.resolve(entries.get(field))))
        this.issue([...path, field], `missing field \`${field}\``, resolved);
    }
    return entries;
  }

  private missing(path: Path, required: readonly string[]): void {
    for (const field of required) this.issue([...path, field], `missing field \`${field}\``);
  }

  /** A mapping with free-form keys (network policy keys, query parameters), in document order. */
  private keyed(node: unknown, path: Path): Array<[string, unknown]> {
    const resolved = this.resolve(node);
    if (isAbsent(resolved)) return [];
    if (!isMap(resolved)) {
      this.issue(path, `expected a mapping, found ${describe(resolved)}`, resolved);
      return [];
    }
    return resolved.items.flatMap((pair): Array<[string, unknown]> => {
      if (!isScalar(pair.key) || pair.key.value === null) {
        this.issue(path, "mapping keys must be plain scalars", pair.key);
        return [];
      }
      return [[String(pair.key.value), pair.value]];
    });
  }

  private list(node: unknown, path: Path): unknown[] {
    const resolved = this.resolve(node);
    if (isAbsent(resolved)) return [];
    if (!isSeq(resolved)) {
      this.issue(path, `expected a list, found ${describe(resolved)}`, resolved);
      return [];
    }
    return resolved.items;
  }

  private resolvedItems(node: unknown): unknown[] {
    const resolved = this.resolve(node);
    return isSeq(resolved) ? resolved.items : [];
  }

  private strings(node: unknown, path: Path): string[] {
    return this.list(node, path).flatMap((item, index) => {
      const value = this.string(item, [...path, index]);
      return value === undefined ? [] : [value];
    });
  }

  private string(node: unknown, path: Path, expected = "expected a string"): string | undefined {
    const resolved = this.resolve(node);
    if (isAbsent(resolved)) return undefined;
    if (isScalar(resolved) && typeof resolved.value === "string") return resolved.value;
    this.issue(path, `${expected}, found ${describe(resolved)}`, resolved);
    return undefined;
  }

  private bool(node: unknown, path: Path): boolean | undefined {
    const resolved = this.resolve(node);
    if (isAbsent(resolved)) return undefined;
    if (isScalar(resolved) && typeof resolved.value === "boolean") return resolved.value;
    this.issue(path, `expected a boolean (true or false), found ${describe(resolved)}`, resolved);
    return undefined;
  }

  private integer(node: unknown, path: Path, max: number): number | undefined {
    const resolved = this.resolve(node);
    if (isAbsent(resolved)) return undefined;
    const value = isScalar(resolved) ? resolved.value : undefined;
    if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max) return value;
    this.issue(path, `expected an integer from 0 to ${max}, found ${describe(resolved)}`, resolved);
    return undefined;
  }

  private resolve(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  private issue(path: Path, message: string, node?: unknown): void {
    this.issues.push({ path, message, line: this.lineOf(node) ?? this.lineAt(path) ?? 1 });
  }

  private lineOf(node: unknown): number | undefined {
    const range = (node as Node | undefined)?.range;
    if (range === undefined || range === null) return undefined;
    return this.lines.linePos(range[0]).line;
  }
}

function isAbsent(node: unknown): boolean {
  return node === undefined || node === null || (isScalar(node) && node.value === null);
}

function describe(node: unknown): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const value = node.value;
    if (typeof value === "string") return `string ${JSON.stringify(value)}`;
    if (typeof value === "number") return `${Number.isInteger(value) ? "integer" : "number"} ${value}`;
    if (typeof value === "boolean") return `boolean ${value}`;
    return String(value);
  }
  return "nothing";
}
