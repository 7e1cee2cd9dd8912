import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { accessPresetRules, expandAccessPreset } from "./access-presets.js";

const methods = (rules: sandboxv1.L7Rule[]) =>
  rules.map((rule) => `${rule.allow?.method} ${rule.allow?.path}`);

describe("expandAccessPreset", () => {
  it("expands the three presets on `**`", () => {
    const endpoint = (access: string) => create(sandboxv1.NetworkEndpointSchema, { access });
    expect(methods(expandAccessPreset(endpoint("read-only")))).toEqual(["GET **", "HEAD **", "OPTIONS **"]);
    expect(methods(expandAccessPreset(endpoint("read-write")))).toEqual([
      "GET **",
      "HEAD **",
      "OPTIONS **",
      "POST **",
      "PUT **",
      "PATCH **",
    ]);
    expect(methods(expandAccessPreset(endpoint("full")))).toEqual(["* **"]);
    expect(expandAccessPreset(endpoint(""))).toEqual([]);
    expect(accessPresetRules("write-ish")).toBeUndefined();
  });

  it("keeps explicit rules when present", () => {
    const endpoint = create(sandboxv1.NetworkEndpointSchema, {
      access: "full",
      rules: [{ allow: { method: "GET", path: "/x" } }],
    });
    expect(methods(expandAccessPreset(endpoint))).toEqual(["GET /x"]);
  });
});
