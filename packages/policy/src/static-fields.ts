import { equals } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";

/**
 * Upstream's `validate_static_fields_unchanged` (§2.12) for a policy update on a live sandbox:
 * the filesystem section may only grow (same include_workdir, every baseline path kept), landlock
 * and process must be identical. Throws `invalid_argument` with upstream's message.
 */
export function checkStaticFieldsUnchanged(
  baseline: sandboxv1.SandboxPolicy,
  next: sandboxv1.SandboxPolicy,
): void {
  checkFilesystemAdditive(baseline.filesystem, next.filesystem);
  if (!sameMessage(sandboxv1.LandlockPolicySchema, baseline.landlock, next.landlock)) {
    throw refuse("landlock policy cannot be changed on a live sandbox (applied at startup)");
  }
  if (!sameMessage(sandboxv1.ProcessPolicySchema, baseline.process, next.process)) {
    throw refuse("process policy cannot be changed on a live sandbox (applied at startup)");
  }
}

function checkFilesystemAdditive(
  baseline: sandboxv1.FilesystemPolicy | undefined,
  next: sandboxv1.FilesystemPolicy | undefined,
): void {
  // No baseline filesystem section: anything goes (enrichment from empty).
  if (baseline === undefined) return;
  if (next === undefined) throw refuse("filesystem policy cannot be removed on a live sandbox");
  if (baseline.includeWorkdir !== next.includeWorkdir) {
    throw refuse("filesystem include_workdir cannot be changed on a live sandbox");
  }
  for (const path of baseline.readOnly) {
    if (!next.readOnly.includes(path)) {
      throw refuse(`filesystem read_only path '${path}' cannot be removed on a live sandbox`);
    }
  }
  for (const path of baseline.readWrite) {
    if (!next.readWrite.includes(path)) {
      throw refuse(`filesystem read_write path '${path}' cannot be removed on a live sandbox`);
    }
  }
}

function sameMessage<T extends sandboxv1.LandlockPolicy | sandboxv1.ProcessPolicy>(
  schema: Parameters<typeof equals>[0],
  a: T | undefined,
  b: T | undefined,
): boolean {
  if (a === undefined || b === undefined) return a === b;
  return equals(schema, a as never, b as never);
}

function refuse(message: string): OpenShellError {
  return new OpenShellError("invalid_argument", message);
}
