import { existsSync } from "node:fs";
import { OpenShellError } from "@openshell/core";

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

/** `--upload LOCAL[:DEST]`. */
export function parseUploadSpec(spec: string): { local: string; dest: string } {
  const colon = spec.lastIndexOf(":");
  if (colon > 0 && spec.slice(colon + 1).startsWith("/"))
    return { local: spec.slice(0, colon), dest: spec.slice(colon + 1) };
  return { local: spec, dest: "/sandbox" };
}

/** Upstream's registry of community sandbox images (`--from base`); OPENSHELL_COMMUNITY_REGISTRY overrides it. */
const COMMUNITY_REGISTRY = "ghcr.io/nvidia/openshell-community/sandboxes";

/**
 * `--from SRC` as upstream resolves it, image references only: one with `/`, `:` or `.` is used as
 * it is, a bare name is a community image (`<registry>/<name>:latest`). A local Dockerfile or build
 * context is refused (no image builds here: build and push it, then pass its reference).
 */
export function resolveSandboxImage(from: string, env: NodeJS.ProcessEnv): string {
  const source = from.trim();
  if (!source)
    throw new OpenShellError("invalid_argument", "--from must not be empty: give an image reference");
  if (existsSync(source))
    throw new OpenShellError(
      "invalid_argument",
      `--from '${source}' is a local path: building images is not supported; build and push it, then pass its image reference`,
    );
  if (/[/:.]/.test(source)) return source;
  return `${env.OPENSHELL_COMMUNITY_REGISTRY || COMMUNITY_REGISTRY}/${source}:latest`;
}
