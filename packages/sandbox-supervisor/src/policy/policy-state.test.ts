import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { type InstalledPolicy, PolicyState, settingText } from "./policy-state.js";

const policy = (version: number) =>
  create(sandboxv1.SandboxPolicySchema, { version, filesystem: { readOnly: [`/v${version}`] } });
const entry = (version: number) => ({
  policy: policy(version),
  version,
  hash: `hash-${version}`,
  source: sandboxv1.PolicySource.SANDBOX,
  origin: "gateway" as const,
});
const boolSetting = (value: boolean, scope = sandboxv1.SettingScope.SANDBOX) =>
  create(sandboxv1.EffectiveSettingSchema, { value: { value: { case: "boolValue", value } }, scope });

describe("PolicyState", () => {
  it("swaps whole policies and tells every listener the new one and the one it replaced", () => {
    const state = new PolicyState();
    const seen: Array<[number, number | undefined]> = [];
    state.onPolicyInstalled(() => {
      throw new Error("a consumer's bug");
    });
    const unsubscribe = state.onPolicyInstalled((next, previous) =>
      seen.push([next.version, previous?.version]),
    );
    expect(state.policy).toBeUndefined();
    const first = state.install(entry(1));
    state.install(entry(2));
    unsubscribe();
    state.install(entry(3));
    expect(seen).toEqual([
      [1, undefined],
      [2, 1],
    ]);
    expect(state.policy?.version).toBe(3);
    expect(state.policy?.policy.filesystem?.readOnly).toEqual(["/v3"]);
    // An installed entry is never edited in place: a holder of the old one keeps what it had.
    expect(Object.isFrozen(first)).toBe(true);
    expect((first as InstalledPolicy).version).toBe(1);
  });

  it("replaces the settings and returns what changed, sorted by key", () => {
    const state = new PolicyState();
    expect(state.ocsfJsonEnabled).toBe(false);
    expect(state.replaceSettings({ ocsf_json_enabled: boolSetting(true) })).toEqual([
      {
        key: "ocsf_json_enabled",
        before: undefined,
        after: { case: "boolValue", value: true },
        scope: sandboxv1.SettingScope.SANDBOX,
      },
    ]);
    expect(state.ocsfJsonEnabled).toBe(true);
    // Same value, another scope: nothing to log.
    expect(
      state.replaceSettings({ ocsf_json_enabled: boolSetting(true, sandboxv1.SettingScope.GLOBAL) }),
    ).toEqual([]);
    const changes = state.replaceSettings({
      b_int: create(sandboxv1.EffectiveSettingSchema, {
        value: { value: { case: "intValue", value: 4n } },
        scope: sandboxv1.SettingScope.GLOBAL,
      }),
    });
    expect(
      changes.map((change) => [change.key, settingText(change.before), settingText(change.after)]),
    ).toEqual([
      ["b_int", "<unset>", "4"],
      ["ocsf_json_enabled", "true", "<unset>"],
    ]);
    expect(state.ocsfJsonEnabled).toBe(false);
  });

  it("remembers the config revision last applied", () => {
    const state = new PolicyState();
    expect(state.configRevision).toBeUndefined();
    state.markRevision(42n);
    expect(state.configRevision).toBe(42n);
  });
});
