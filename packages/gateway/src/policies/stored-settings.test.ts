import { create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../store/sqlite-store.js";
import {
  decodeStoredSettings,
  emptySettings,
  encodeStoredSettings,
  materializeGlobalSettings,
  mergeEffectiveSettings,
  requireRegisteredKey,
  SettingsRecords,
  type SettingsRegistry,
  storedFromProto,
  upsertSetting,
} from "./stored-settings.js";

const registry: SettingsRegistry = {
  kindOf: (key) => (({ ocsf_json_enabled: "bool", dummy_int: "int" }) as const)[key as "dummy_int"],
  keys: ["dummy_int", "ocsf_json_enabled"],
  validate(key, value) {
    const kind = this.kindOf(key);
    if (!kind || value.value.case !== `${kind}Value`)
      throw new OpenShellError("invalid_argument", `bad ${key}`);
  },
};
const bool = (value: boolean) =>
  create(sandboxv1.SettingValueSchema, { value: { case: "boolValue", value } });

describe("stored settings", () => {
  it("round-trips upstream's JSON, large integers included", () => {
    const settings = emptySettings();
    settings.revision = 3n;
    upsertSetting(settings, "ocsf_json_enabled", { type: "Bool", value: true });
    upsertSetting(settings, "big", { type: "Int", value: 2n ** 62n });
    upsertSetting(settings, "policy", { type: "Bytes", value: "0a0b" });
    const encoded = encodeStoredSettings(settings);
    expect(JSON.parse(Buffer.from(encoded).toString())).toMatchObject({
      revision: 3,
      settings: { ocsf_json_enabled: { type: "Bool", value: true } },
    });
    expect(decodeStoredSettings(encoded)).toEqual(settings);
  });

  it("says whether an upsert changed anything", () => {
    const settings = emptySettings();
    expect(upsertSetting(settings, "k", { type: "Bool", value: true })).toBe(true);
    expect(upsertSetting(settings, "k", { type: "Bool", value: true })).toBe(false);
    expect(upsertSetting(settings, "k", { type: "Bool", value: false })).toBe(true);
  });

  it("stores what the registry accepts, refusing a missing value first", () => {
    expect(storedFromProto(registry, "ocsf_json_enabled", bool(true))).toEqual({ type: "Bool", value: true });
    expect(
      storedFromProto(
        registry,
        "dummy_int",
        create(sandboxv1.SettingValueSchema, { value: { case: "intValue", value: 5n } }),
      ),
    ).toEqual({ type: "Int", value: 5n });
    expect(() => storedFromProto(registry, "nope", bool(true))).toThrow("bad nope");
    expect(() => storedFromProto(registry, "ocsf_json_enabled", undefined)).toThrow(
      "setting_value is required",
    );
    expect(() => requireRegisteredKey(registry, "nope")).toThrow(
      "unknown setting key 'nope'. Allowed keys: dummy_int, ocsf_json_enabled",
    );
  });

  it("merges global over sandbox with scopes, every registered key present, policy left out", () => {
    const global = emptySettings();
    const sandbox = emptySettings();
    upsertSetting(global, "policy", { type: "Bytes", value: "00" });
    upsertSetting(global, "ocsf_json_enabled", { type: "Bool", value: false });
    upsertSetting(sandbox, "ocsf_json_enabled", { type: "Bool", value: true });
    upsertSetting(sandbox, "retired_key", { type: "Bool", value: true });
    const merged = mergeEffectiveSettings(registry, global, sandbox);
    expect(Object.keys(merged).sort()).toEqual(["dummy_int", "ocsf_json_enabled"]);
    expect(merged.ocsf_json_enabled).toMatchObject({
      scope: sandboxv1.SettingScope.GLOBAL,
      value: { value: { case: "boolValue", value: false } },
    });
    expect(merged.dummy_int?.scope).toBe(sandboxv1.SettingScope.UNSPECIFIED);
    expect(merged.dummy_int?.value).toBeUndefined();
    global.settings.delete("ocsf_json_enabled");
    expect(mergeEffectiveSettings(registry, global, sandbox).ocsf_json_enabled?.scope).toBe(
      sandboxv1.SettingScope.SANDBOX,
    );
    expect(Object.keys(materializeGlobalSettings(registry, global)).sort()).toEqual([
      "dummy_int",
      "ocsf_json_enabled",
    ]);
  });

  it("keeps global and per-sandbox records in the store", async () => {
    const store = SqliteStore.open(":memory:");
    const records = new SettingsRecords(store);
    const global = await records.global();
    expect(global.revision).toBe(0n);
    upsertSetting(global, "ocsf_json_enabled", { type: "Bool", value: true });
    global.revision++;
    await records.saveGlobal(global);
    await records.saveGlobal(global);
    const forSandbox = emptySettings();
    forSandbox.revision = 7n;
    await records.saveSandbox("sb-1", forSandbox);
    expect(await records.global()).toEqual(global);
    expect((await records.sandbox("sb-1")).revision).toBe(7n);
    expect((await records.sandbox("sb-2")).revision).toBe(0n);
    await store.close();
  });
});
