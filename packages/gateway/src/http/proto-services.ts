import type { DescFile, DescService } from "@bufbuild/protobuf";
import * as proto from "@openshell/proto";

/**
 * Every service declared in the generated protos: the files `@openshell/proto` exports (flat or in a
 * package namespace) and the files they import. A service or RPC added to a .proto later shows up
 * here without a code change.
 */
export function protoServices(): DescService[] {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (files.has(file.name)) return;
    files.set(file.name, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const value of Object.values(proto)) {
    if (isDescFile(value)) visit(value);
    else if (isNamespace(value))
      for (const inner of Object.values(value)) if (isDescFile(inner)) visit(inner);
  }
  return [...files.values()].flatMap((file) => file.services);
}

function isDescFile(value: unknown): value is DescFile {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "file";
}

function isNamespace(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !("kind" in value);
}
