import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SUPERVISOR_BIN } from "@openshell/testing/sandbox-harness";
import { afterAll, describe, expect, it } from "vitest";

/**
 * Fail closed (issue 13): a supervisor without its confinement launcher logs the fatal finding
 * `platform-sandbox-unavailable` with the reason and exits non-zero, even while its gateway is
 * unreachable; it never goes on to look Ready with children that can only be refused.
 */
describe("supervisor without its confinement launcher", () => {
  const dir = mkdtempSync(join(tmpdir(), "launcher-fail-closed-"));
  chmodSync(dir, 0o777);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 1 with the finding and the reason", async () => {
    const launcher = join(dir, "missing", "openshell-launch");
    const child = spawn(
      process.execPath,
      [SUPERVISOR_BIN, "--run-as-user", "nobody", "--workdir", dir, "--launcher", launcher],
      {
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          OPENSHELL_SANDBOX_ID: "launcher-fail-closed",
          OPENSHELL_SANDBOX: "launcher-fail-closed",
          OPENSHELL_ENDPOINT: "http://127.0.0.1:1",
          OPENSHELL_SUPERVISOR_TOKEN: "token",
          OPENSHELL_SSH_SOCKET_PATH: join(dir, "run", "ssh.sock"),
          OPENSHELL_LOG_LEVEL: "info",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.on("exit", (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, output).toBe(1);
    const lines = output
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { level: string | number; msg: string; finding?: string });
    const finding = lines.find((line) => line.finding === "platform-sandbox-unavailable");
    expect(finding?.msg).toMatch(
      /^FINDING:BLOCKED \[FATAL\] BLOCKED platform-sandbox-unavailable: children cannot be confined, the supervisor exits: the confinement launcher .*missing\/openshell-launch is not executable \(ENOENT\)/,
    );
    const fatal = lines.find((line) => line.level === "fatal");
    expect(fatal?.msg).toMatch(
      /^platform sandbox unavailable and the sandbox requires confinement: the confinement launcher /,
    );
    expect(output).not.toContain("supervisor session established");
    expect(output).not.toContain("SSH:LISTEN");
  });
});
