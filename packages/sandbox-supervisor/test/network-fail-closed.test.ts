import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { runSupervisorUntilExit, sharedScratchDir } from "./fail-closed-harness.js";

/**
 * Fail closed (issue 13): a supervisor that cannot set up the sandbox's network namespace (here:
 * run as `nobody`, without CAP_NET_ADMIN) logs why and exits non-zero, even while its gateway is
 * unreachable; it never goes on to serve children unconfined.
 */
describe.skipIf(process.getuid?.() !== 0)("supervisor without network isolation", () => {
  const dir = sharedScratchDir("fail-closed-");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 78 (failed closed) with the reason when the namespace cannot be created", async () => {
    const { code, output, lines } = await runSupervisorUntilExit({
      sandbox: "fail-closed",
      dir,
      wrapper: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
      // An executable launcher, so the network (not the launcher check) is what fails.
      args: ["--run-as-user", "nobody", "--workdir", dir, "--launcher", "/bin/true"],
    });
    expect(code, output).toBe(78); // SUPERVISOR_EXIT.failedClosed
    const fatal = lines.find((line) => line.level === "fatal");
    expect(fatal?.msg).toMatch(/^network namespace creation failed and proxy mode requires isolation: /);
    expect(output).not.toContain("supervisor session established");
  });
});
