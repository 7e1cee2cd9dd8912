import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BootConsoleWatch, type BootNews, parseBootLine } from "./boot-console-watch.js";

const line = (msg: string) =>
  `${JSON.stringify({ level: "warn", name: "openshell-sandbox", ocsf: { class: "NET" }, msg })}\n`;

describe("BootConsoleWatch", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("reports failed and established sessions appended after it started, across partial writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "oscw-"));
    dirs.push(dir);
    const file = join(dir, "console.log");
    writeFileSync(
      file,
      line("NET:FAIL [MEDIUM] supervisor session failed, reconnecting in 1000 ms (attempt 1): old boot"),
    );
    const news: BootNews[] = [];
    const watch = new BootConsoleWatch(file, (item) => news.push(item));
    const failure = line(
      "NET:FAIL [MEDIUM] supervisor session failed, reconnecting in 2000 ms (attempt 2): connect ECONNREFUSED 10.0.2.2:1",
    );
    appendFileSync(
      file,
      `[    1.0] kernel noise\nOPENSHELL-VM-INIT workspace seeded from /opt/openshell/workspace-seed\nOPENSHELL-VM-INIT ready uptime=2.10 env=8 tls=3\n${line("LIFECYCLE:START [INFO] openshell-sandbox starting")}${failure.slice(0, 40)}`,
    );
    watch.poll();
    expect(news).toEqual([
      { kind: "workspace-seeded" },
      { kind: "guest-ready", uptimeS: 2.1 },
      { kind: "supervisor-started" },
    ]);
    news.length = 0;
    appendFileSync(file, failure.slice(40));
    appendFileSync(file, line("NET:OPEN [INFO] supervisor session established"));
    watch.poll();
    expect(news).toEqual([
      { kind: "unreachable", detail: "connect ECONNREFUSED 10.0.2.2:1" },
      { kind: "connected" },
    ]);
  });

  it("reports the supervisor's start-up policy sync failing (before any session) as unreachable too", () => {
    expect(
      parseBootLine(
        line(
          "NET:FAIL [MEDIUM] start-up policy sync failed, retrying in 1000 ms (attempt 1): connect ECONNREFUSED 10.0.2.2:1",
        ).trim(),
      ),
    ).toEqual({ kind: "unreachable", detail: "connect ECONNREFUSED 10.0.2.2:1" });
  });

  it("ignores lines that are not milestones", () => {
    expect(parseBootLine("OPENSHELL-VM-INIT poweroff uptime=9.10")).toBeUndefined();
    expect(parseBootLine('{"name":"other","msg":"supervisor session established"}')).toBeUndefined();
    expect(parseBootLine("{not json")).toBeUndefined();
  });
});
