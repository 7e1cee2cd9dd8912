import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";

const PRESET_METHODS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  "read-only": Object.freeze(["GET", "HEAD", "OPTIONS"]),
  "read-write": Object.freeze(["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"]),
  full: Object.freeze(["*"]),
});

/** The access preset names an endpoint may use instead of explicit rules. */
export const ACCESS_PRESETS: readonly string[] = Object.freeze(Object.keys(PRESET_METHODS));

/** The explicit allow rules of a preset (every method on path `**`), or undefined for an unknown preset. */
export function accessPresetRules(access: string): sandboxv1.L7Rule[] | undefined {
  const methods = PRESET_METHODS[access];
  if (methods === undefined) return undefined;
  return methods.map((method) => create(sandboxv1.L7RuleSchema, { allow: { method, path: "**" } }));
}

/**
 * The allow rules an endpoint enforces: its explicit `rules` when present, else its `access` preset
 * expanded (read-only = GET/HEAD/OPTIONS, read-write adds POST/PUT/PATCH, full = `*`, all on `**`).
 * No rules and no (known) preset gives an empty list.
 */
export function expandAccessPreset(endpoint: sandboxv1.NetworkEndpoint): sandboxv1.L7Rule[] {
  if (endpoint.rules.length > 0) return endpoint.rules;
  return accessPresetRules(endpoint.access) ?? [];
}
