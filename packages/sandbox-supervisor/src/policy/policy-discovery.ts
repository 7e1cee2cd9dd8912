import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { emitOcsf, type Logger } from "@openshell/core";
import {
  CONTAINER_POLICY_PATH,
  enrichBaselinePaths,
  LEGACY_CONTAINER_POLICY_PATH,
  restrictiveDefaultPolicy,
} from "@openshell/policy";
import type { sandboxv1 } from "@openshell/proto";
import { checkDiskPolicy } from "./disk-policy.js";
import type { PolicyOrigin } from "./policy-state.js";

/** Upstream's container policy paths, looked for under the discovery root in this order. */
const POLICY_DISCOVERY_PATHS: readonly string[] = Object.freeze([
  CONTAINER_POLICY_PATH,
  LEGACY_CONTAINER_POLICY_PATH,
]);

export interface DiscoveredPolicy {
  policy: sandboxv1.SandboxPolicy;
  origin: Exclude<PolicyOrigin, "gateway">;
  /** The file it came from (also set when that file was refused and the default replaced it). */
  path?: string;
}

/**
 * §3.4 gRPC mode, when the gateway holds no policy for the sandbox: the image's policy file, else
 * the restrictive default. A file that does not parse or is unsafe is never used: the restrictive
 * default replaces it and a FINDING `unsafe-disk-policy` says why. Baseline paths are then added
 * (when the policy has network rules), as upstream does before syncing it back.
 */
export async function discoverPolicy(root: string, logger: Logger): Promise<DiscoveredPolicy> {
  const found = await readFirstPolicyFile(root);
  let discovered: DiscoveredPolicy;
  if (!found) {
    discovered = { policy: restrictiveDefaultPolicy(), origin: "default" };
    emitOcsf(logger, {
      class: "CONFIG",
      activity: "DEFAULT",
      message: "no policy from the gateway or on disk: using the restrictive default",
      fields: { searched: POLICY_DISCOVERY_PATHS.map((path) => join(root, path)) },
    });
  } else {
    const checked =
      "text" in found
        ? checkDiskPolicy(found.text, found.path)
        : { ok: false as const, errors: [found.readError] };
    if (checked.ok) {
      discovered = { policy: checked.policy, origin: "disk", path: found.path };
      emitOcsf(logger, {
        class: "CONFIG",
        activity: "DISCOVERED",
        message: `policy discovered at ${found.path}`,
        fields: { policy_path: found.path },
      });
    } else {
      discovered = { policy: restrictiveDefaultPolicy(), origin: "default", path: found.path };
      emitOcsf(logger, {
        class: "FINDING",
        activity: "BLOCKED",
        severity: "HIGH",
        disposition: "BLOCKED",
        message: `unsafe-disk-policy: ${found.path} refused, using the restrictive default: ${checked.errors.join("; ")}`,
        fields: { finding: "unsafe-disk-policy", policy_path: found.path, errors: checked.errors },
      });
    }
  }
  enrichBaselinePaths(discovered.policy, { pathExists: imagePathExists(root) });
  return discovered;
}

type PolicyFile = { path: string; text: string } | { path: string; readError: string };

async function readFirstPolicyFile(root: string): Promise<PolicyFile | undefined> {
  for (const relative of POLICY_DISCOVERY_PATHS) {
    const path = join(root, relative);
    try {
      return { path, text: await readFile(path, "utf8") };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      // A file that exists but cannot be read is a broken image, not an absent policy.
      return { path, readError: `cannot read ${path}: ${(error as Error).message}` };
    }
  }
  return undefined;
}

/** Baseline read-only paths the image lacks are not added (Landlock would skip them anyway). */
export const imagePathExists =
  (root: string) =>
  (path: string): boolean =>
    existsSync(join(root, path));
