import { describe, expect, it } from "vitest";
import { parseSupervisorCommand, SUPERVISOR_FLAGS, supervisorUsage } from "./supervisor-config.js";

const env = {
  OPENSHELL_SANDBOX_ID: "id-1",
  OPENSHELL_SANDBOX: "box",
  OPENSHELL_ENDPOINT: "http://10.0.2.2:8080",
  OPENSHELL_SUPERVISOR_TOKEN: "oss1.id-1.sig",
};

describe("parseSupervisorCommand", () => {
  it("reads identity and gateway from env, flags win", () => {
    const parsed = parseSupervisorCommand(["--sandbox", "flagged", "--", "sleep", "1"], env);
    expect(parsed).toMatchObject({
      kind: "run",
      config: {
        sandboxId: "id-1",
        sandboxName: "flagged",
        sshSocketPath: "/run/openshell/ssh.sock",
        runAsUser: "sandbox",
        workdir: "/sandbox",
        command: ["sleep", "1"],
        policyPollIntervalSecs: 60,
        policyDiscoveryRoot: "/",
      },
    });
  });

  it("takes the workload from after --, else OPENSHELL_SANDBOX_COMMAND split on whitespace, else /bin/bash", () => {
    const command = (argv: string[], extra: Record<string, string> = {}) => {
      const parsed = parseSupervisorCommand(argv, { ...env, ...extra });
      return parsed.kind === "run" ? parsed.config.command : undefined;
    };
    expect(command([])).toEqual(["/bin/bash"]);
    expect(command([], { OPENSHELL_SANDBOX_COMMAND: "  tail  -f\t/dev/null " })).toEqual([
      "tail",
      "-f",
      "/dev/null",
    ]);
    expect(command(["--", "sleep", "--help"], { OPENSHELL_SANDBOX_COMMAND: "tail -f /dev/null" })).toEqual([
      "sleep",
      "--help",
    ]);
    expect(command([], { OPENSHELL_SANDBOX_COMMAND: "   " })).toEqual(["/bin/bash"]);
    expect(parseSupervisorCommand(["-w", "/w", "-t", "5", "-i"], env)).toMatchObject({
      config: { workdir: "/w", timeoutSecs: 5, interactive: true },
    });
    expect(parseSupervisorCommand([], env)).toMatchObject({ config: { timeoutSecs: 0, interactive: false } });
    expect(() => parseSupervisorCommand(["--timeout=-1"], env)).toThrow("--timeout '-1'");
    expect(supervisorUsage()).toMatch(/-t, --timeout SECS/);
    expect(supervisorUsage()).toContain("OPENSHELL_SANDBOX_COMMAND");
  });

  it("reads the policy poll interval and discovery root from flags or env", () => {
    const parsed = parseSupervisorCommand(["--policy-discovery-root", "/tmp/image"], {
      ...env,
      OPENSHELL_POLICY_POLL_INTERVAL_SECS: "5",
    });
    expect(parsed).toMatchObject({
      config: { policyPollIntervalSecs: 5, policyDiscoveryRoot: "/tmp/image" },
    });
    expect(() => parseSupervisorCommand([], { ...env, OPENSHELL_POLICY_POLL_INTERVAL_SECS: "0" })).toThrow(
      "OPENSHELL_POLICY_POLL_INTERVAL_SECS='0'",
    );
  });

  it("confines children through the launcher unless the test-only flag says otherwise", () => {
    expect(parseSupervisorCommand([], env)).toMatchObject({
      config: { launcherPath: "/opt/openshell/bin/openshell-launch", testOnlyNoIsolation: false },
    });
    expect(
      parseSupervisorCommand(["--launcher", "/x/launch", "--test-only-no-isolation"], env),
    ).toMatchObject({
      config: { launcherPath: "/x/launch", testOnlyNoIsolation: true },
    });
    expect(
      parseSupervisorCommand([], { ...env, OPENSHELL_TEST_ONLY_NO_ISOLATION: "1", OPENSHELL_LAUNCHER: "/y" }),
    ).toMatchObject({ config: { launcherPath: "/y", testOnlyNoIsolation: true } });
    expect(() => parseSupervisorCommand([], { ...env, OPENSHELL_TEST_ONLY_NO_ISOLATION: "maybe" })).toThrow(
      "OPENSHELL_TEST_ONLY_NO_ISOLATION='maybe'",
    );
  });

  it("writes the OCSF JSONL files to /var/log unless told otherwise", () => {
    expect(parseSupervisorCommand([], env)).toMatchObject({ config: { ocsfLogDir: "/var/log" } });
    expect(parseSupervisorCommand(["--ocsf-log-dir", "/x"], env)).toMatchObject({
      config: { ocsfLogDir: "/x" },
    });
    expect(parseSupervisorCommand([], { ...env, OPENSHELL_OCSF_LOG_DIR: "/y" })).toMatchObject({
      config: { ocsfLogDir: "/y" },
    });
  });

  it("refuses to start listing every missing or malformed setting", () => {
    expect(() => parseSupervisorCommand([], {})).toThrow(
      /--sandbox-id \(or OPENSHELL_SANDBOX_ID\) is required[\s\S]*--sandbox \(or OPENSHELL_SANDBOX\)[\s\S]*OPENSHELL_ENDPOINT[\s\S]*OPENSHELL_SUPERVISOR_TOKEN/,
    );
    expect(() => parseSupervisorCommand([], { ...env, OPENSHELL_ENDPOINT: "ftp://gw" })).toThrow(
      "must start with http:// or https://",
    );
    expect(() => parseSupervisorCommand([], { ...env, OPENSHELL_ENDPOINT: "10.0.2.2:8080" })).toThrow(
      "is not a URL (expected e.g. http://10.0.2.2:8080)",
    );
    expect(() => parseSupervisorCommand([], { ...env, OPENSHELL_ENDPOINT: "https://gw:8443" })).toThrow(
      "OPENSHELL_TLS_CA is required for an https:// endpoint",
    );
    expect(() => parseSupervisorCommand(["--bogus"], env)).toThrow("Unknown option '--bogus'");
    expect(() => parseSupervisorCommand(["--log-level", "loud"], env)).toThrow("--log-level 'loud'");
  });

  it("--help is generated from the flag table: every flag and env var is listed", () => {
    const help = supervisorUsage();
    for (const [name, spec] of Object.entries(SUPERVISOR_FLAGS)) {
      if (!("envOnly" in spec)) expect(help).toContain(`--${name}`);
      if ("env" in spec) expect(help).toContain(spec.env);
    }
  });
});
