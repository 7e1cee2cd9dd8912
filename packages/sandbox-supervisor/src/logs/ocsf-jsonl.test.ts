import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createLogger, emitOcsf } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { afterAll, describe, expect, it } from "vitest";
import { PolicyState } from "../policy/policy-state.js";
import { OcsfJsonlWriter } from "./ocsf-jsonl.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ocsf-jsonl-"));
  dirs.push(dir);
  return dir;
}
const setting = (value: boolean) => ({
  ocsf_json_enabled: create(sandboxv1.EffectiveSettingSchema, {
    value: { value: { case: "boolValue", value } },
    scope: sandboxv1.SettingScope.SANDBOX,
  }),
});
const today = () => new Date().toISOString().slice(0, 10);
const readEvents = (file: string) =>
  existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
    : [];

describe("OcsfJsonlWriter", () => {
  it("writes OCSF events as JSONL only while ocsf_json_enabled is on", () => {
    const dir = tempDir();
    const state = new PolicyState();
    const writer = new OcsfJsonlWriter({ enabled: () => state.ocsfJsonEnabled, dir });
    const logger = createLogger({ name: "openshell-sandbox", level: "info", destination: writer });
    const denied = (n: number) =>
      emitOcsf(logger, {
        class: "NET",
        activity: "REFUSE",
        severity: "MEDIUM",
        disposition: "BLOCKED",
        message: `curl(${n}) -> example.com:443 [policy:- reason:endpoint not in policy]`,
        fields: { host: "example.com", port: 443, binary: "/usr/bin/curl" },
      });
    const file = join(dir, `openshell-ocsf.${today()}.log`);

    denied(1); // off (unset): nothing
    expect(existsSync(file)).toBe(false);

    state.replaceSettings(setting(true));
    denied(2);
    logger.info("not an OCSF event"); // plain log lines never go to the JSONL file
    emitOcsf(logger, { class: "CONFIG", activity: "LOADED", message: "policy loaded [version:v2]" });
    const events = readEvents(file);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      class_uid: 4001,
      class_name: "NET",
      category_uid: 4,
      activity_name: "REFUSE",
      severity: "MEDIUM",
      severity_id: 3,
      disposition: "BLOCKED",
      message:
        "NET:REFUSE [MEDIUM] BLOCKED curl(2) -> example.com:443 [policy:- reason:endpoint not in policy]",
      metadata: { version: "1.7.0" },
      unmapped: { host: "example.com", port: 443, binary: "/usr/bin/curl" },
    });
    expect(typeof events[0]?.time).toBe("number");
    expect(events[1]).toMatchObject({ class_uid: 5019, activity_name: "LOADED", severity_id: 1 });
    expect(events[1]).not.toHaveProperty("unmapped");

    state.replaceSettings(setting(false));
    denied(3);
    expect(readEvents(file)).toHaveLength(2);

    state.replaceSettings(setting(true)); // on again: appended to the same day's file
    denied(4);
    expect(readEvents(file).map((event) => event.message)).toEqual([
      expect.stringContaining("curl(2)"),
      "CONFIG:LOADED [INFO] policy loaded [version:v2]",
      expect.stringContaining("curl(4)"),
    ]);
    writer.close();
  });

  it("keeps the newest 3 daily files", () => {
    const dir = tempDir();
    for (const day of ["2020-01-01", "2020-01-02", "2020-01-03"]) {
      writeFileSync(join(dir, `openshell-ocsf.${day}.log`), "{}\n");
    }
    writeFileSync(join(dir, "openshell.2020-01-01.log"), "other\n");
    const writer = new OcsfJsonlWriter({ enabled: () => true, dir });
    writer.write(JSON.stringify({ time: new Date().toISOString(), ocsf: { class_uid: 1007 }, msg: "x" }));
    writer.close();
    expect(readdirSync(dir).sort()).toEqual([
      "openshell-ocsf.2020-01-02.log",
      "openshell-ocsf.2020-01-03.log",
      `openshell-ocsf.${today()}.log`,
      "openshell.2020-01-01.log",
    ]);
  });

  it("stays quiet when the directory cannot be written", () => {
    const dir = tempDir();
    const notADir = join(dir, "file");
    writeFileSync(notADir, "");
    const writer = new OcsfJsonlWriter({ enabled: () => true, dir: notADir });
    expect(() => writer.write(JSON.stringify({ ocsf: { class_uid: 4001 }, msg: "x" }))).not.toThrow();
  });

  it("ignores lines that are not OCSF events", () => {
    const dir = tempDir();
    const writer = new OcsfJsonlWriter({ enabled: () => true, dir });
    writer.write("not json");
    writer.write(JSON.stringify({ msg: "plain" }));
    writer.write(JSON.stringify({ ocsf: { class: "NET" }, msg: "no class_uid" }));
    writer.close();
    expect(readdirSync(dir)).toEqual([]);
  });
});
