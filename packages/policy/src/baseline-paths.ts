import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";

/** Read-only paths a proxy-mode sandbox process needs (loader, libraries, DNS, CA certs, logs). */
export const PROXY_BASELINE_READ_ONLY: readonly string[] = Object.freeze([
  "/usr",
  "/lib",
  "/etc",
  "/app",
  "/var/log",
  "/proc",
  "/dev/urandom",
]);
/** Read-write paths a proxy-mode sandbox process needs. */
export const PROXY_BASELINE_READ_WRITE: readonly string[] = Object.freeze(["/sandbox", "/tmp"]);

/**
 * Upstream's baseline enrichment (§3.4, without the GPU paths), in place: when the policy has
 * network policies (proxy mode), adds the missing baseline paths, creating the filesystem section
 * (include_workdir true) when absent. A read-only baseline path already listed read-write is left
 * alone; `pathExists` lets the supervisor skip read-only paths its image lacks. Returns whether
 * anything was added (the supervisor then syncs the policy back; the change is additive).
 */
export function enrichBaselinePaths(
  policy: sandboxv1.SandboxPolicy,
  options: { pathExists?: (path: string) => boolean } = {},
): boolean {
  if (Object.keys(policy.networkPolicies).length === 0) return false;
  const pathExists = options.pathExists ?? (() => true);
  policy.filesystem ??= create(sandboxv1.FilesystemPolicySchema, { includeWorkdir: true });
  const fs = policy.filesystem;
  let changed = false;
  for (const path of PROXY_BASELINE_READ_ONLY) {
    if (fs.readOnly.includes(path) || fs.readWrite.includes(path) || !pathExists(path)) continue;
    fs.readOnly.push(path);
    changed = true;
  }
  for (const path of PROXY_BASELINE_READ_WRITE) {
    if (fs.readWrite.includes(path)) continue;
    fs.readWrite.push(path);
    changed = true;
  }
  return changed;
}
