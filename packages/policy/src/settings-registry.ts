import { create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";

export type SettingKind = "string" | "bool" | "int";

/** A setting the gateway accepts (upstream's `REGISTERED_SETTINGS`, production build). */
export type RegisteredSetting = { readonly key: string; readonly kind: SettingKind };

/** The settings registry, keyed by setting name: only `ocsf_json_enabled` (bool) in production. */
export const SETTINGS: Readonly<Record<string, Readonly<{ kind: SettingKind }>>> = Object.freeze({
  ocsf_json_enabled: Object.freeze({ kind: "bool" as const }),
});

/** The global setting key under which a global policy is stored; only policy commands may set it. */
export const POLICY_SETTING_KEY = "policy";

const TRUE_WORDS: ReadonlySet<string> = new Set(["1", "true", "yes", "y", "on"]);
const FALSE_WORDS: ReadonlySet<string> = new Set(["0", "false", "no", "n", "off"]);

/** The registered setting `key`, or undefined (own keys only: `toString` is not a setting). */
export function settingForKey(key: string): RegisteredSetting | undefined {
  if (!Object.hasOwn(SETTINGS, key)) return undefined;
  return { key, kind: (SETTINGS[key] as { kind: SettingKind }).kind };
}

/** The registered keys, sorted, for messages ("Allowed keys: …"). */
export function settingKeys(): string[] {
  return Object.keys(SETTINGS).sort();
}

/** Upstream's `parse_bool_like`: 1/true/yes/y/on and 0/false/no/n/off, any case, surrounding blanks ignored. */
export function parseBoolLike(text: string): boolean | undefined {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return undefined;
}

/** Parses a value typed on the command line for a registered setting; `invalid_argument` otherwise. */
export function parseSettingValue(key: string, text: string): sandboxv1.SettingValue {
  const setting = requireSetting(key);
  switch (setting.kind) {
    case "bool": {
      const value = parseBoolLike(text);
      if (value === undefined) {
        throw new OpenShellError(
          "invalid_argument",
          `setting '${key}' expects a bool value (1/true/yes/y/on or 0/false/no/n/off), got '${text}'`,
        );
      }
      return create(sandboxv1.SettingValueSchema, { value: { case: "boolValue", value } });
    }
    case "int": {
      const trimmed = text.trim();
      if (!/^[+-]?\d+$/.test(trimmed)) {
        throw new OpenShellError("invalid_argument", `setting '${key}' expects an int value, got '${text}'`);
      }
      return create(sandboxv1.SettingValueSchema, { value: { case: "intValue", value: BigInt(trimmed) } });
    }
    case "string":
      return create(sandboxv1.SettingValueSchema, { value: { case: "stringValue", value: text } });
  }
}

/**
 * The gateway's check of a setting sent over the wire (upstream `proto_setting_to_stored`):
 * registered key, a value present, of the registered kind. Throws `invalid_argument`.
 */
export function validateSettingValue(key: string, value: sandboxv1.SettingValue | undefined): void {
  const setting = requireSetting(key);
  const actual = value?.value.case;
  if (actual === undefined) throw new OpenShellError("invalid_argument", "setting_value.value is required");
  if (actual === "bytesValue") {
    throw new OpenShellError(
      "invalid_argument",
      `setting '${key}' expects ${setting.kind} value; bytes are not supported for this key`,
    );
  }
  const expected = { string: "stringValue", bool: "boolValue", int: "intValue" }[setting.kind];
  if (actual !== expected) {
    throw new OpenShellError("invalid_argument", `setting '${key}' expects ${setting.kind} value`);
  }
}

/** A setting value as text: strings as they are, bools `true`/`false`, ints in decimal, bytes in hex; unset is "". */
export function settingValueToText(value: sandboxv1.SettingValue | undefined): string {
  const inner = value?.value;
  switch (inner?.case) {
    case "stringValue":
      return inner.value;
    case "boolValue":
      return inner.value ? "true" : "false";
    case "intValue":
      return inner.value.toString();
    case "bytesValue":
      return Buffer.from(inner.value).toString("hex");
    default:
      return "";
  }
}

function requireSetting(key: string): RegisteredSetting {
  const setting = settingForKey(key);
  if (setting === undefined) {
    throw new OpenShellError(
      "invalid_argument",
      `unknown setting key '${key}'. Allowed keys: ${settingKeys().join(", ")}`,
    );
  }
  return setting;
}
