import { existsSync, readFileSync, statSync } from "node:fs";
import { OpenShellError } from "@openshell/core";
import { checkPolicyYaml } from "@openshell/policy";
import type { sandboxv1 } from "@openshell/proto";

/** A policy file read and checked on this machine: the policy and the supervisor's warnings. */
export interface LocalPolicy {
  policy: sandboxv1.SandboxPolicy;
  /** `<file>:<line>: <yaml.path>: <reason>` lines, as the supervisor would warn. */
  warnings: string[];
}

/**
 * `<yaml.path> (line N): <reason>` (@openshell/policy's form) as `<file>:N: <yaml.path>: <reason>`,
 * the form editors and terminals turn into a link to the line.
 */
export function locateProblem(file: string, problem: string): string {
  const located = /^(.*?) \(line (\d+)\): (.*)$/s.exec(problem);
  if (!located) return `${file}: ${problem}`;
  const [, path, line, reason] = located;
  return path === "yaml" ? `${file}:${line}: ${reason}` : `${file}:${line}: ${path}: ${reason}`;
}

/**
 * Reads a sandbox policy YAML (upstream's snake_case schema) and checks it the way the gateway and
 * the supervisor will (strict schema, safety rules, L7 rules), before anything is sent or created.
 * Every problem is one line `<file>:<line>: <yaml.path>: <reason>`; any problem is exit 2 (a
 * missing file is not found, exit 4, as elsewhere).
 */
export function readPolicyFile(file: string, flag = "--policy"): LocalPolicy {
  if (!existsSync(file) || !statSync(file).isFile())
    throw new OpenShellError(
      "not_found",
      `policy file '${file}' does not exist; pass the path of a policy YAML to ${flag}`,
    );
  const check = checkPolicyYaml(readFileSync(file, "utf8"));
  if (check.policy === undefined || check.problems.length > 0) {
    const lines = check.problems.map((problem) => `  ${locateProblem(file, problem)}`);
    throw new OpenShellError(
      "invalid_argument",
      `policy file '${file}' is not a valid sandbox policy (nothing was sent):\n${lines.join("\n")}`,
    );
  }
  return { policy: check.policy, warnings: check.warnings.map((warning) => locateProblem(file, warning)) };
}
