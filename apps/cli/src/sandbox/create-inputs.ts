import { existsSync, readFileSync } from "node:fs";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { parse as parseYaml } from "yaml";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `--env K=V` (repeatable) → a map; a bad entry names itself and the expected form. */
export function parseEnvAssignments(entries: string[] | undefined): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const entry of entries ?? []) {
    const equals = entry.indexOf("=");
    const key = equals < 0 ? entry : entry.slice(0, equals);
    if (equals < 0 || !ENV_NAME.test(key))
      throw new OpenShellError(
        "invalid_argument",
        `bad --env '${entry}': use KEY=VALUE, where KEY is letters, digits and '_' and does not start with a digit`,
      );
    environment[key] = entry.slice(equals + 1);
  }
  return environment;
}

/** Reads a policy YAML (upstream's snake_case schema) into the SandboxPolicy message. */
export function loadPolicyFile(file: string): sandboxv1.SandboxPolicy {
  if (!existsSync(file))
    throw new OpenShellError(
      "not_found",
      `policy file '${file}' does not exist; pass the path of a policy YAML to --policy`,
    );
  let document: unknown;
  try {
    document = parseYaml(readFileSync(file, "utf8"));
  } catch (error) {
    throw new OpenShellError(
      "invalid_argument",
      `policy file '${file}' is not valid YAML: ${(error as Error).message}`,
    );
  }
  if (document === null || typeof document !== "object" || Array.isArray(document))
    throw new OpenShellError(
      "invalid_argument",
      `policy file '${file}' must be a YAML mapping (version, filesystem, network_policies, ...)`,
    );
  try {
    return fromJson(sandboxv1.SandboxPolicySchema, document as JsonValue);
  } catch (error) {
    throw new OpenShellError(
      "invalid_argument",
      `policy file '${file}' does not match the policy schema: ${(error as Error).message}`,
    );
  }
}

/** `--upload LOCAL[:DEST]`. */
export function parseUploadSpec(spec: string): { local: string; dest: string } {
  const colon = spec.lastIndexOf(":");
  if (colon > 0 && spec.slice(colon + 1).startsWith("/"))
    return { local: spec.slice(0, colon), dest: spec.slice(colon + 1) };
  return { local: spec, dest: "/sandbox" };
}
