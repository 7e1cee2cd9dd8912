import { existsSync } from "node:fs";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { freePort } from "@openshell/testing/process";
import { afterAll, describe, expect, it } from "vitest";

/**
 * `sandbox create` refuses bad names, sizes and images (exit 2) before it starts or contacts any
 * gateway.
 */
describe("openshell sandbox create input checks", () => {
  let user: CliSandboxUser;
  afterAll(async () => user?.dispose());

  it("an empty --name, bad --cpus/--memory/--disk and a --from that is no image exit 2 with a message that says what to use", async () => {
    user = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(await freePort()) });
    const cases: [string[], string][] = [
      [["--name", ""], "--name must not be empty: give a name, or leave --name out"],
      [["--name", "  "], "--name must not be empty"],
      [["--cpus", "0"], "bad --cpus '0': use a whole number of CPUs such as 2"],
      [["--memory", "2GB"], "bad --memory '2GB': use a size such as 512Mi or 2Gi"],
      [["--disk", "lots"], "bad --disk 'lots': use a size such as 512Mi or 2Gi"],
      [["--from", ""], "--from must not be empty"],
      [["--from", user.root], "is a local path: building images is not supported"],
    ];
    for (const [args, message] of cases) {
      const result = await user.run(["sandbox", "create", ...args, "--", "true"]);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toContain(message);
    }
    // Refused before auto-bootstrap: no gateway was started for this user.
    expect(existsSync(user.gatewayStateDir())).toBe(false);
  });
});
