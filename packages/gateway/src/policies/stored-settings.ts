import { create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { sandboxSettingsId } from "../sandboxes/sandbox-records.js";
import { ObjectTypes, type Store } from "../store/store.js";

/** The reserved settings key under which the global policy is kept (hex-encoded protobuf). */
export const POLICY_SETTING_KEY = "policy";

export type SettingKind = "string" | "bool" | "int";

/** Which keys may be set, and their types (`@openshell/policy`'s SETTINGS in the gateway). */
export interface SettingsRegistry {
  kindOf(key: string): SettingKind | undefined;
  readonly keys: readonly string[];
  /** INVALID_ARGUMENT unless `key` is registered and `value` holds a value of its kind. */
  validate(key: string, value: sandboxv1.SettingValue): void;
}

/** Upstream's StoredSettingValue, serialised the same way: `{"type":"Bool","value":true}`. */
export type StoredSettingValue =
  | { type: "String"; value: string }
  | { type: "Bool"; value: boolean }
  | { type: "Int"; value: bigint }
  | { type: "Bytes"; value: string };

/** A settings record: a revision bumped on every change, and the values by key. */
export interface StoredSettings {
  revision: bigint;
  settings: Map<string, StoredSettingValue>;
}

const GLOBAL_SETTINGS_ID = "gateway_settings:global";
const GLOBAL_SETTINGS_NAME = "global";

export function emptySettings(): StoredSettings {
  return { revision: 0n, settings: new Map() };
}

/** `{"revision":3,"settings":{"ocsf_json_enabled":{"type":"Bool","value":true}}}` (upstream's JSON). */
export function encodeStoredSettings(settings: StoredSettings): Uint8Array {
  const entries: Record<string, { type: string; value: unknown }> = {};
  for (const key of [...settings.settings.keys()].sort()) {
    const value = settings.settings.get(key) as StoredSettingValue;
    entries[key] =
      value.type === "Int"
        ? { type: "Int", value: jsonInteger(value.value) }
        : { type: value.type, value: value.value };
  }
  return Buffer.from(JSON.stringify({ revision: jsonInteger(settings.revision), settings: entries }));
}

export function decodeStoredSettings(payload: Uint8Array): StoredSettings {
  let parsed: { revision?: unknown; settings?: Record<string, { type?: unknown; value?: unknown }> };
  try {
    parsed = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch (error) {
    throw new OpenShellError("internal", `decode settings payload failed: ${(error as Error).message}`);
  }
  const settings = new Map<string, StoredSettingValue>();
  for (const [key, entry] of Object.entries(parsed.settings ?? {})) {
    switch (entry.type) {
      case "String":
      case "Bytes":
        settings.set(key, { type: entry.type, value: String(entry.value) });
        break;
      case "Bool":
        settings.set(key, { type: "Bool", value: entry.value === true });
        break;
      case "Int":
        settings.set(key, { type: "Int", value: BigInt(entry.value as string | number) });
        break;
      default:
        throw new OpenShellError("internal", `decode settings payload failed: key '${key}' has no type`);
    }
  }
  return { revision: BigInt((parsed.revision as number | string | undefined) ?? 0), settings };
}

/** JSON numbers while exact, strings beyond 2^53 (decoded back to the same bigint). */
function jsonInteger(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

/** Global settings (`gateway_settings:global`) and each sandbox's (`settings:<sandbox id>`). */
export class SettingsRecords {
  constructor(private readonly store: Store) {}

  async global(): Promise<StoredSettings> {
    const row = await this.store.getObject(ObjectTypes.gatewaySettings, GLOBAL_SETTINGS_ID);
    return row ? decodeStoredSettings(row.payload) : emptySettings();
  }

  async saveGlobal(settings: StoredSettings): Promise<void> {
    await this.save(ObjectTypes.gatewaySettings, GLOBAL_SETTINGS_ID, GLOBAL_SETTINGS_NAME, settings);
  }

  async sandbox(sandboxId: string): Promise<StoredSettings> {
    const row = await this.store.getObject(ObjectTypes.sandboxSettings, sandboxSettingsId(sandboxId));
    return row ? decodeStoredSettings(row.payload) : emptySettings();
  }

  async saveSandbox(sandboxId: string, settings: StoredSettings): Promise<void> {
    await this.save(ObjectTypes.sandboxSettings, sandboxSettingsId(sandboxId), sandboxId, settings);
  }

  private async save(
    type: typeof ObjectTypes.gatewaySettings | typeof ObjectTypes.sandboxSettings,
    id: string,
    name: string,
    settings: StoredSettings,
  ): Promise<void> {
    const existing = await this.store.getObject(type, id);
    const now = Date.now();
    await this.store.upsertObject({
      type,
      id,
      name,
      payload: encodeStoredSettings(settings),
      createdAtMs: existing?.createdAtMs ?? now,
      updatedAtMs: now,
    });
  }
}

/** Sets `key`; false when it already held an equal value (nothing changed). */
export function upsertSetting(settings: StoredSettings, key: string, value: StoredSettingValue): boolean {
  const existing = settings.settings.get(key);
  if (existing && existing.type === value.type && existing.value === value.value) return false;
  settings.settings.set(key, value);
  return true;
}

/** INVALID_ARGUMENT naming the allowed keys when `key` is not registered. */
export function requireRegisteredKey(registry: SettingsRegistry, key: string): SettingKind {
  const kind = registry.kindOf(key);
  if (!kind) {
    throw new OpenShellError(
      "invalid_argument",
      `unknown setting key '${key}'. Allowed keys: ${registry.keys.join(", ")}`,
    );
  }
  return kind;
}

/** Upstream's proto_setting_to_stored: checked by the registry, then in the stored form. */
export function storedFromProto(
  registry: SettingsRegistry,
  key: string,
  value: sandboxv1.SettingValue | undefined,
): StoredSettingValue {
  if (!value) throw new OpenShellError("invalid_argument", "setting_value is required");
  registry.validate(key, value);
  const inner = value.value;
  switch (inner.case) {
    case "stringValue":
      return { type: "String", value: inner.value };
    case "boolValue":
      return { type: "Bool", value: inner.value };
    case "intValue":
      return { type: "Int", value: inner.value };
    default:
      throw new OpenShellError("invalid_argument", `setting '${key}' has no storable value`);
  }
}

function protoFromStored(value: StoredSettingValue): sandboxv1.SettingValue {
  switch (value.type) {
    case "String":
      return create(sandboxv1.SettingValueSchema, { value: { case: "stringValue", value: value.value } });
    case "Bool":
      return create(sandboxv1.SettingValueSchema, { value: { case: "boolValue", value: value.value } });
    case "Int":
      return create(sandboxv1.SettingValueSchema, { value: { case: "intValue", value: value.value } });
    case "Bytes":
      return create(sandboxv1.SettingValueSchema, {
        value: { case: "bytesValue", value: new Uint8Array(Buffer.from(value.value, "hex")) },
      });
  }
}

/**
 * Upstream's merge_effective_settings: every registered key (unset: no value, scope UNSPECIFIED),
 * then the sandbox's values (SANDBOX), then the global ones, which win (GLOBAL). The reserved
 * `policy` key and keys no longer registered are left out.
 */
export function mergeEffectiveSettings(
  registry: SettingsRegistry,
  global: StoredSettings,
  sandbox: StoredSettings,
): Record<string, sandboxv1.EffectiveSetting> {
  const merged: Record<string, sandboxv1.EffectiveSetting> = {};
  for (const key of registry.keys) {
    merged[key] = create(sandboxv1.EffectiveSettingSchema, { scope: sandboxv1.SettingScope.UNSPECIFIED });
  }
  const layer = (settings: StoredSettings, scope: sandboxv1.SettingScope) => {
    for (const [key, value] of settings.settings) {
      if (key === POLICY_SETTING_KEY || !registry.kindOf(key)) continue;
      merged[key] = create(sandboxv1.EffectiveSettingSchema, { value: protoFromStored(value), scope });
    }
  };
  layer(sandbox, sandboxv1.SettingScope.SANDBOX);
  layer(global, sandboxv1.SettingScope.GLOBAL);
  return merged;
}

/** Upstream's materialize_global_settings (GetGatewayConfig): registered keys, unset ones empty. */
export function materializeGlobalSettings(
  registry: SettingsRegistry,
  global: StoredSettings,
): Record<string, sandboxv1.SettingValue> {
  const materialized: Record<string, sandboxv1.SettingValue> = {};
  for (const key of registry.keys) materialized[key] = create(sandboxv1.SettingValueSchema);
  for (const [key, value] of global.settings) {
    if (key === POLICY_SETTING_KEY || !registry.kindOf(key)) continue;
    materialized[key] = protoFromStored(value);
  }
  return materialized;
}
