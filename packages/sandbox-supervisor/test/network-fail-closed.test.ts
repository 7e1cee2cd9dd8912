import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SUPERVISOR_BIN } from "@openshell/testing/sandbox-harness";
import { afterAll, describe, expect, it } from "vitest";

/**
 * Fail closed (issue 13): a supervisor that cannot set up the sandbox's network namespace (here:
 * run as `nobody`, without CAP_NET_ADMIN) logs why and exits non-zero, even while its gateway is
 * unreachable; it never goes on to serve children unconfined.
 */
describe.skipIf(process.getuid?.() !== 0)("supervisor without network isolation", () => {
  const dir = mkdtempSync(join(tmpdir(), "fail-closed-"));
  chmodSync(dir, 0o777);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 1 with the reason when the namespace cannot be created", async () => {
    const child = spawn(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        process.execPath,
        SUPERVISOR_BIN,
        "--run-as-user",
        "nobody",
        "--workdir",
        dir,
        // An executable launcher, so the network (not the launcher check) is what fails.
        "--launcher",
        "/bin/true",
      ],
      {
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          OPENSHELL_SANDBOX_ID: "fail-closed",
          OPENSHELL_SANDBOX: "fail-closed",
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
    const fatal = output
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { level: string; msg: string })
      .find((line) => line.level === "fatal");
    expect(fatal?.msg).toMatch(/^network namespace creation failed and proxy mode requires isolation: /);
    expect(output).not.toContain("supervisor session established");
  });
});
