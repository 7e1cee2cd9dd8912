import { create } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import {
  parseBoolLike,
  parseSettingValue,
  SETTINGS,
  settingForKey,
  settingValueToText,
  validateSettingValue,
} from "./settings-registry.js";

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect((error as OpenShellError).code).toBe("invalid_argument");
    return (error as OpenShellError).message;
  }
  throw new Error("expected a refusal");
}

describe("settings registry", () => {
  it("registers only ocsf_json_enabled, a bool", () => {
    expect(SETTINGS).toEqual({ ocsf_json_enabled: { kind: "bool" } });
    expect(settingForKey("ocsf_json_enabled")).toEqual({ key: "ocsf_json_enabled", kind: "bool" });
    expect(settingForKey("toString")).toBeUndefined();
  });

  it("parses bool words like upstream", () => {
    for (const word of ["1", "true", "yes", "y", "on", " TRUE ", "Y"]) expect(parseBoolLike(word)).toBe(true);
    for (const word of ["0", "false", "no", "n", "off", "Off"]) expect(parseBoolLike(word)).toBe(false);
    for (const word of ["", "maybe", "2", "enabled"]) expect(parseBoolLike(word)).toBeUndefined();
  });

  it("parses a typed value for a registered key", () => {
    const value = parseSettingValue("ocsf_json_enabled", "on");
    expect(value.value).toEqual({ case: "boolValue", value: true });
    expect(settingValueToText(value)).toBe("true");
    expect(settingValueToText(parseSettingValue("ocsf_json_enabled", "no"))).toBe("false");
  });

  it("refuses unknown keys naming the known ones, and bad bools", () => {
    expect(refusal(() => parseSettingValue("log_level", "debug"))).toBe(
      "unknown setting key 'log_level'. Allowed keys: ocsf_json_enabled",
    );
    expect(refusal(() => parseSettingValue("ocsf_json_enabled", "maybe"))).toBe(
      "setting 'ocsf_json_enabled' expects a bool value (1/true/yes/y/on or 0/false/no/n/off), got 'maybe'",
    );
    expect(() => parseSettingValue("ocsf_json_enabled", "x")).toThrow(OpenShellError);
  });

  it("validates wire values with the gateway's messages", () => {
    const of = (value: sandboxv1.SettingValue["value"]) => create(sandboxv1.SettingValueSchema, { value });
    expect(() =>
      validateSettingValue("ocsf_json_enabled", of({ case: "boolValue", value: true })),
    ).not.toThrow();
    expect(refusal(() => validateSettingValue("ocsf_json_enabled", of({ case: undefined })))).toBe(
      "setting_value.value is required",
    );
    expect(
      refusal(() => validateSettingValue("ocsf_json_enabled", of({ case: "stringValue", value: "true" }))),
    ).toBe("setting 'ocsf_json_enabled' expects bool value");
    expect(
      refusal(() =>
        validateSettingValue("ocsf_json_enabled", of({ case: "bytesValue", value: new Uint8Array() })),
      ),
    ).toBe("setting 'ocsf_json_enabled' expects bool value; bytes are not supported for this key");
    expect(refusal(() => validateSettingValue("nope", undefined))).toMatch(/^unknown setting key 'nope'/);
  });

  it("renders every value kind as text", () => {
    const of = (value: sandboxv1.SettingValue["value"]) => create(sandboxv1.SettingValueSchema, { value });
    expect(settingValueToText(of({ case: "stringValue", value: "x" }))).toBe("x");
    expect(settingValueToText(of({ case: "intValue", value: 42n }))).toBe("42");
    expect(settingValueToText(of({ case: "bytesValue", value: new Uint8Array([0xab]) }))).toBe("ab");
    expect(settingValueToText(undefined)).toBe("");
  });
});
