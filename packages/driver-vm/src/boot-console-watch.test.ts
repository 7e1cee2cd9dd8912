import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  BootConsoleWatch,
  type BootNews,
  guestExit,
  guestSaidConnected,
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
    // The workload's output is logged under the supervisor's name: never a milestone.
    const workloadSays = (msg: string) =>
      JSON.stringify({ level: "info", name: "openshell-sandbox", workload_stream: "stdout", pid: 9, msg });
    expect(parseBootLine(workloadSays("supervisor session established"))).toBeUndefined();
    expect(
      parseBootLine(workloadSays("start-up policy sync failed, retrying in 1000 ms (attempt 1): forged")),
    ).toBeUndefined();
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

describe("guestExit", () => {
  const dir = mkdtempSync(join(tmpdir(), "osge-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const record = (fields: Record<string, unknown>) =>
    `${JSON.stringify({ level: "info", name: "openshell-sandbox", ...fields })}\n`;
  const fatal = (msg: string) => record({ level: "fatal", msg });
  const workloadEnd = (fields: Record<string, unknown>) =>
    record({
      ocsf: { class_uid: 1007, class: "PROC", activity: "TERMINATE", severity: "INFO" },
      workload: true,
      pid: 42,
      msg: "PROC:TERMINATE [INFO] workload tail(42) [exit:3]",
      timed_out: false,
      signal: null,
      ...fields,
    });
  const boot = (name: string, body: string, older = "") => {
    const file = join(dir, name);
    writeFileSync(
      file,
      `${older}OPENSHELL-VM-INIT ready uptime=2.10 env=8 tls=0\n${record({ msg: "LIFECYCLE:START [INFO] openshell-sandbox starting" })}${body}`,
    );
    return file;
  };
  const exited = (status: number) => `OPENSHELL-VM-INIT supervisor exited status=${status} uptime=3.00\n`;

  it("a fatal line and exit code 78 (SUPERVISOR_EXIT.failedClosed): failed closed, with the reason escaped and cut", () => {
    const reason = `platform sandbox unavailable and the sandbox requires confinement: \u001b[2Jgone ${"x".repeat(700)}`;
    const exit = guestExit(boot("failed-closed.log", `${fatal(reason)}${exited(78)}`));
    expect(exit.kind).toBe("failed-closed");
    const text = exit.kind === "failed-closed" ? exit.reason : "";
    expect(text).toMatch(
      /^platform sandbox unavailable and the sandbox requires confinement: \\u\{1b\}\[2Jgone x+$/,
    );
    expect(text).toHaveLength(600 + "\\u{1b}".length - 1);
  });

  it("is not failed closed without the exit code, without the fatal line, or when a workload ran", () => {
    expect(guestExit(boot("status-1.log", `${fatal("boom")}${exited(1)}`)).kind).toBe("other");
    expect(guestExit(boot("no-fatal.log", exited(78))).kind).toBe("other");
    // An older boot's failure does not count for the last one.
    expect(guestExit(boot("older.log", exited(0), `${fatal("old")}${exited(78)}`)).kind).toBe("other");
    // A workload that exits 78 itself is a workload exit.
    expect(guestExit(boot("workload-78.log", `${workloadEnd({ exit_code: 78 })}${exited(78)}`))).toEqual({
      kind: "workload-exited",
      detail: "the sandbox's workload exited with code 78",
    });
  });

  it("a workload's end: its exit code, its signal or its timeout", () => {
    expect(guestExit(boot("exit-3.log", `${workloadEnd({ exit_code: 3 })}${exited(3)}`))).toEqual({
      kind: "workload-exited",
      detail: "the sandbox's workload exited with code 3",
    });
    expect(
      guestExit(boot("signal.log", `${workloadEnd({ exit_code: null, signal: "SIGKILL" })}${exited(137)}`)),
    ).toEqual({ kind: "workload-exited", detail: "the sandbox's workload was killed by SIGKILL" });
    expect(
      guestExit(
        boot(
          "timeout.log",
          `${workloadEnd({ exit_code: null, signal: "SIGTERM", timed_out: true })}${exited(124)}`,
        ),
      ),
    ).toEqual({
      kind: "workload-exited",
      detail: "the sandbox's workload ran past its timeout and was killed (exit code 124)",
    });
  });

  it("the workload's own output cannot pose as its end or as a fatal line", () => {
    const forged = record({
      workload_stream: "stdout",
      pid: 42,
      msg: JSON.stringify({ level: "fatal", name: "openshell-sandbox", msg: "forged", workload: true }),
    });
    expect(guestExit(boot("forged.log", `${forged}${exited(78)}`)).kind).toBe("other");
  });

  it("is other for a crash (no status line) and when there is no console", () => {
    expect(
      guestExit(boot("crash.log", record({ msg: "NET:OPEN [INFO] supervisor session established" }))).kind,
    ).toBe("other");
    expect(guestExit(join(dir, "missing.log")).kind).toBe("other");
  });
});

describe("guestSaidConnected", () => {
  const dir = mkdtempSync(join(tmpdir(), "oscc-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is true only when the last boot's supervisor logged its session (not a workload's line, not an older boot)", () => {
    const file = join(dir, "console.log");
    const established = line("NET:OPEN [INFO] supervisor session established");
    const ready = "OPENSHELL-VM-INIT ready uptime=2.00 env=8 tls=0\n";
    writeFileSync(file, `${ready}${established}${ready}`);
    expect(guestSaidConnected(file)).toBe(false);
    const workload = `${JSON.stringify({ name: "openshell-sandbox", ocsf: {}, workload_stream: "stdout", msg: "supervisor session established" })}\n`;
    appendFileSync(file, workload);
    expect(guestSaidConnected(file)).toBe(false);
    appendFileSync(file, established);
    expect(guestSaidConnected(file)).toBe(true);
    expect(guestSaidConnected(join(dir, "missing.log"))).toBe(false);
  });
});
