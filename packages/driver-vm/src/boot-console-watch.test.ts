import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  BootConsoleWatch,
  type BootNews,
  parseBootLine,
  supervisorFatalAtStart,
} from "./boot-console-watch.js";

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

describe("supervisorFatalAtStart", () => {
  const dir = mkdtempSync(join(tmpdir(), "oscf-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fatal = (msg: string) => `${JSON.stringify({ level: "fatal", name: "openshell-sandbox", msg })}\n`;
  const reason = `platform sandbox unavailable and the sandbox requires confinement: the confinement launcher /opt/openshell/bin/openshell-launch is not executable (ENOENT); ${"x".repeat(300)}`;

  it("gives the last boot's fatal supervisor line, whole (longer than a console tail line)", () => {
    const file = join(dir, "fatal.log");
    writeFileSync(
      file,
      `OPENSHELL-VM-INIT ready uptime=2.00 env=8 tls=0\n${fatal("an older boot's reason")}OPENSHELL-VM-INIT ready uptime=2.10 env=8 tls=0\n${line("LIFECYCLE:START [INFO] openshell-sandbox starting")}${fatal(reason)}OPENSHELL-VM-INIT supervisor exited status=1 uptime=3.00\n`,
    );
    expect(supervisorFatalAtStart(file)).toBe(reason);
  });

  it("is undefined when the last boot has none, or there is no console", () => {
    const file = join(dir, "none.log");
    writeFileSync(
      file,
      `OPENSHELL-VM-INIT ready uptime=2.00 env=8 tls=0\n${fatal("an older boot's reason")}OPENSHELL-VM-INIT ready uptime=2.10 env=8 tls=0\n${line("NET:OPEN [INFO] supervisor session established")}`,
    );
    expect(supervisorFatalAtStart(file)).toBeUndefined();
    expect(supervisorFatalAtStart(join(dir, "missing.log"))).toBeUndefined();
  });

  it("escapes control characters the guest wrote", () => {
    const file = join(dir, "escape.log");
    writeFileSync(file, `OPENSHELL-VM-INIT ready uptime=1.00\n${fatal("bad \u001b[2J reason")}`);
    expect(supervisorFatalAtStart(file)).toBe("bad \\u{1b}[2J reason");
  });
});
