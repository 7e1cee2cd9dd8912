import { OpenShellError } from "@openshell/core";
import type { sandboxv1 } from "@openshell/proto";
import { SANDBOX_IDENTITY } from "./default-policy.js";
import type { PolicyIssue } from "./policy-issue.js";

/** Most filesystem paths (read_only + read_write) one policy may list. */
export const MAX_FILESYSTEM_PATHS = 256;
/** Longest accepted filesystem path, in bytes. */
export const MAX_PATH_LENGTH = 4096;

/**
 * Upstream's `validate_sandbox_policy` (gateway and disk policies), located: each issue carries the
 * YAML path of what it is about. Messages are upstream's, word for word.
 */
export function findUnsafePolicyContent(policy: sandboxv1.SandboxPolicy): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const process = policy.process;
  if (process !== undefined) {
    for (const [field, value] of [
      ["run_as_user", process.runAsUser],
      ["run_as_group", process.runAsGroup],
    ] as const) {
      if (value !== SANDBOX_IDENTITY) {
        issues.push({ path: ["process", field], message: `${field} must be 'sandbox', got '${value}'` });
      }
    }
  }

  const fs = policy.filesystem;
  if (fs !== undefined) {
    const total = fs.readOnly.length + fs.readWrite.length;
    if (total > MAX_FILESYSTEM_PATHS) {
      issues.push({
        path: ["filesystem_policy"],
        message: `too many filesystem paths (${total} > ${MAX_FILESYSTEM_PATHS})`,
      });
    }
    const lists = [
      ["read_only", fs.readOnly],
      ["read_write", fs.readWrite],
    ] as const;
    for (const [list, paths] of lists) {
      paths.forEach((path, index) => {
        const at = ["filesystem_policy", list, index];
        const length = Buffer.byteLength(path);
        if (length > MAX_PATH_LENGTH) {
          issues.push({
            path: at,
            message: `path exceeds maximum length (${length} > ${MAX_PATH_LENGTH}): ${truncateForDisplay(path)}`,
          });
          return;
        }
        if (!path.startsWith("/")) {
          issues.push({ path: at, message: `path must be absolute (start with '/'): ${path}` });
        }
        if (path.split("/").includes("..")) {
          issues.push({ path: at, message: `path contains '..' traversal component: ${path}` });
        }
      });
    }
    fs.readWrite.forEach((path, index) => {
      if (path.replace(/\/+$/, "") === "") {
        issues.push({
          path: ["filesystem_policy", "read_write", index],
          message: `read-write path is overly broad: ${path}`,
        });
      }
    });
  }

  for (const [key, rule] of Object.entries(policy.networkPolicies)) {
    const name = rule.name === "" ? key : rule.name;
    rule.endpoints.forEach((endpoint, index) => {
      if (isTldWildcard(endpoint.host)) {
        issues.push({
          path: ["network_policies", key, "endpoints", index, "host"],
          message: `network policy '${name}': TLD wildcard '${endpoint.host}' is not allowed; use subdomain wildcards like '*.example.com' instead`,
        });
      }
    });
  }
  return issues;
}

/** `*.com`, `**.io`: a leading wildcard over at most two labels. */
export function isTldWildcard(host: string): boolean {
  return (host.startsWith("*.") || host.startsWith("**.")) && host.split(".").length <= 2;
}

/** The gateway's safety checks (§4.2): every violation's message, empty when the policy is safe. */
export function validateSandboxPolicy(policy: sandboxv1.SandboxPolicy): string[] {
  return findUnsafePolicyContent(policy).map((issue) => issue.message);
}

/** Throws `invalid_argument` "policy contains unsafe content: …" (violations joined with "; "), as the gateway answers. */
export function assertSafePolicy(policy: sandboxv1.SandboxPolicy): void {
  const violations = validateSandboxPolicy(policy);
  if (violations.length > 0) {
    throw new OpenShellError("invalid_argument", `policy contains unsafe content: ${violations.join("; ")}`);
  }
}

function truncateForDisplay(text: string): string {
  if (text.length <= 80) return text;
  return `${Array.from(text).slice(0, 77).join("")}...`;
}
