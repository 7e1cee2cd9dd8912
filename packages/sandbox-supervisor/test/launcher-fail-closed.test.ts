import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runSupervisorUntilExit, sharedScratchDir } from "./fail-closed-harness.js";

/**
 * Fail closed (issue 13): a supervisor without its confinement launcher logs the fatal finding
 * `platform-sandbox-unavailable` with the reason and exits non-zero, even while its gateway is
 * unreachable; it never goes on to look Ready with children that can only be refused.
 */
describe("supervisor without its confinement launcher", () => {
  const dir = sharedScratchDir("launcher-fail-closed-");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 78 (failed closed) with the finding and the reason", async () => {
    const launcher = join(dir, "missing", "openshell-launch");
    const { code, output, lines } = await runSupervisorUntilExit({
      sandbox: "launcher-fail-closed",
      dir,
      args: ["--run-as-user", "nobody", "--workdir", dir, "--launcher", launcher],
    });
    expect(code, output).toBe(78); // SUPERVISOR_EXIT.failedClosed
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
