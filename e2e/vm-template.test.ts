import { execFileSync } from "node:child_process";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { freePort, waitFor } from "@openshell/testing/process";
import { afterAll, afterEach, describe, expect, it } from "vitest";

/** Cold boots, a template VM and a restore under TCG on a loaded 2-core host. */
const TEST_MS = 900_000;
const CREATE_MS = 300_000;

/**
 * VM templates as a user gets them: on by default (the other e2e tests turn them off). The first
 * `sandbox create` boots cold and says a template is made once the sandbox is up; the next one is
 * restored from that template and says so; both sandboxes work on their own.
 */
describe("openshell CLI: new VM sandboxes from the template snapshot (the default)", () => {
  let user: CliSandboxUser;

  afterEach((context) => user?.showLogOnFailure(context.task.result?.state));
  afterAll(async () => user?.dispose());

  it(
    "the first create boots cold and a template is made after it; the next create is restored from it",
    async () => {
      const port = await freePort();
      user = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(port), OPENSHELL_VM_TEMPLATES: undefined });
      const cold = await user.run(["sandbox", "create", "--name", "cold", "--", "echo", "cold-ok"], {
        timeoutMs: CREATE_MS,
      });
      expect(cold.code, cold.stderr).toBe(0);
      expect(cold.stderr).toContain(
        "cold boot: no template for this runtime and size yet (made after this boot)",
      );
      expect(cold.stdout).toContain("cold-ok");

      const templateSnapshots = () =>
        execFileSync("find", [user.root, "-path", "*/templates/*/snapshot.json"], {
          encoding: "utf8",
        }).trim();
      await waitFor(
        () => templateSnapshots() !== "",
        CREATE_MS,
        () => "no template was made after the first sandbox came up",
      );

      const warm = await user.run(
        [
          "sandbox",
          "create",
          "--name",
          "warm",
          "--",
          "sh",
          "-c",
          "echo warm-ok > /sandbox/mine; cat /sandbox/mine",
        ],
        {
          timeoutMs: CREATE_MS,
        },
      );
      expect(warm.code, warm.stderr).toBe(0);
      expect(warm.stderr).toContain("restored from its template snapshot");
      expect(warm.stdout).toContain("warm-ok");

      // Each has its own disk and keeps working.
      const coldFile = await user.run([
        "sandbox",
        "exec",
        "cold",
        "--",
        "sh",
        "-c",
        "[ -e /sandbox/mine ] && cat /sandbox/mine || echo none",
      ]);
      expect(coldFile.stdout.trim()).toBe("none");
      const warmFile = await user.run(["sandbox", "exec", "warm", "--", "cat", "/sandbox/mine"]);
      expect(warmFile.stdout.trim()).toBe("warm-ok");

      const destroy = await user.run(["gateway", "destroy", "--yes"]);
      expect(destroy.code, destroy.stderr).toBe(0);
      expect(user.qemuPids()).toEqual([]);
    },
    TEST_MS,
  );
});
