import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { waitFor } from "@openshell/testing/process";
import {
  type ReadySandbox,
  startReadySandbox,
  stopReadySandbox,
  supervisorLog,
} from "@openshell/testing/sandbox-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * `ocsf_json_enabled` end to end (§3.9, §3.11): the real gateway's setting reaches a real
 * supervisor (test driver: `--ocsf-log-dir` beside its log), which appends OCSF events as JSONL
 * while it is on and stops when it is turned off.
 */
describe("ocsf_json_enabled with the real gateway and supervisor", () => {
  let sandbox: ReadySandbox;
  const NAME = "ocsf-box";
  beforeAll(async () => {
    sandbox = await startReadySandbox(NAME);
  }, 60_000);
  afterAll(async () => {
    if (sandbox) await stopReadySandbox(sandbox, "SIGTERM");
  });

  const file = () =>
    join(
      sandbox.stateDir,
      "drv",
      "supervisors",
      `${sandbox.id}.ocsf`,
      `openshell-ocsf.${new Date().toISOString().slice(0, 10)}.log`,
    );
  const events = () =>
    existsSync(file())
      ? readFileSync(file(), "utf8")
          .split("\n")
          .filter(Boolean)
          .map((line) => JSON.parse(line) as { class_uid: number; message: string })
      : [];
  const set = (value: boolean) =>
    sandbox.gw.grpc.updateConfig({
      name: NAME,
      settingKey: "ocsf_json_enabled",
      settingValue: create(sandboxv1.SettingValueSchema, { value: { case: "boolValue", value } }),
    });
  const log = () => supervisorLog(sandbox.stateDir, sandbox.id);
  const logged = (text: string) =>
    waitFor(
      () => log().includes(text),
      20_000,
      () => `no "${text}" in:\n${log()}`,
    );

  it("writes events while on, none while off", async () => {
    expect(events()).toEqual([]);
    await set(true);
    // The setting's own CONFIG event is the first line (it is logged once the setting applies).
    await waitFor(
      () => events().length > 0,
      20_000,
      () => `no JSONL events; supervisor log:\n${log()}`,
    );
    expect(events()[0]).toMatchObject({
      class_uid: 5019,
      message: "CONFIG:UPDATE [INFO] setting ocsf_json_enabled: <unset> -> true",
    });
    const whileOn = events().length;

    await set(false);
    await logged("setting ocsf_json_enabled: true -> false");
    expect(events()).toHaveLength(whileOn);

    await set(true);
    await waitFor(
      () => events().length > whileOn,
      20_000,
      () => `no new JSONL events:\n${log()}`,
    );
    expect(events().at(-1)?.message).toBe("CONFIG:UPDATE [INFO] setting ocsf_json_enabled: false -> true");
  }, 90_000);
});
