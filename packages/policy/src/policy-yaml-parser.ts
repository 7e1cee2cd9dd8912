import { clone } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { LineCounter, parseDocument } from "yaml";
import { ensureSandboxProcessIdentity } from "./default-policy.js";
import { findL7Findings } from "./l7-validation.js";
import { formatPolicyPath } from "./policy-issue.js";
import { findUnsafePolicyContent } from "./policy-safety.js";
import { type LocatedIssue, PolicyYamlReader } from "./policy-yaml-reader.js";

/** The result of checking a policy file without throwing: problems and warnings as `<path> (line N): <reason>`. */
export type PolicyYamlCheck = {
  /** The policy as read; present even when there are problems, but only meaningful when there are none. */
  policy: sandboxv1.SandboxPolicy | undefined;
  problems: string[];
  warnings: string[];
};

/**
 * Reads and checks a policy YAML document the way the gateway and the supervisor would: the strict
 * schema (unknown fields, types, `port` with `ports`, an empty `rules` list), then the gateway's
 * safety checks (on a copy with the `sandbox` identity filled in, as the gateway does) and the
 * supervisor's L7 checks. Each problem and warning is `<yaml.path> (line N): <reason>`.
 */
export function checkPolicyYaml(text: string): PolicyYamlCheck {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error) => {
      const line = lines.linePos(error.pos[0]).line;
      return `yaml (line ${line}): invalid YAML: ${error.message.split("\n")[0]}`;
    });
    return { policy: undefined, problems, warnings: [] };
  }
  const reader = new PolicyYamlReader(doc, lines);
  const policy = reader.read();
  if (reader.issues.length > 0) {
    const inDocumentOrder = [...reader.issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    return { policy, problems: inDocumentOrder.map(formatIssue), warnings: [] };
  }

  const effective = clone(sandboxv1.SandboxPolicySchema, policy);
  ensureSandboxProcessIdentity(effective);
  const problems: LocatedIssue[] = findUnsafePolicyContent(effective).map((issue) => ({
    ...issue,
    line: reader.lineAt(issue.path),
  }));
  const warnings: LocatedIssue[] = [];
  for (const finding of findL7Findings(policy)) {
    // The gateway's safety checks already report TLD wildcards, in their own words.
    if (finding.tldWildcard) continue;
    const located = { path: finding.path, message: finding.message, line: reader.lineAt(finding.path) };
    (finding.severity === "error" ? problems : warnings).push(located);
  }
  return { policy, problems: problems.map(formatIssue), warnings: warnings.map(formatIssue) };
}

/**
 * Parses a sandbox policy YAML strictly (see `checkPolicyYaml`) and also returns the supervisor's
 * warnings (deprecated `tls` values, `tls: skip` with L7 on 443, unusual methods or globs).
 * Throws `invalid_argument` listing every problem, prefixed with `source` when given.
 */
export function parsePolicyYamlWithWarnings(
  text: string,
  source?: string,
): { policy: sandboxv1.SandboxPolicy; warnings: string[] } {
  const result = checkPolicyYaml(text);
  if (result.policy === undefined || result.problems.length > 0) {
    const prefix = source === undefined || source === "" ? "" : `${source}: `;
    throw new OpenShellError(
      "invalid_argument",
      `${prefix}invalid sandbox policy: ${result.problems.join("; ")}`,
    );
  }
  return { policy: result.policy, warnings: result.warnings };
}

/** Parses a sandbox policy YAML strictly; throws `invalid_argument` listing every problem with its path and line. */
export function parsePolicyYaml(text: string, source?: string): sandboxv1.SandboxPolicy {
  return parsePolicyYamlWithWarnings(text, source).policy;
}

function formatIssue(issue: LocatedIssue): string {
  const line = issue.line === undefined ? "" : ` (line ${issue.line})`;
  return `${formatPolicyPath(issue.path)}${line}: ${issue.message}`;
}
