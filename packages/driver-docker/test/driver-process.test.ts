import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { afterAll, describe, expect, it } from "vitest";

/** The driver binary on its own: what it says at start when Docker is not there, and `doctor`. */
const DRIVER = join(import.meta.dirname, "..", "dist", "openshell-driver-docker.js");
const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), "osdd-proc-"));
let daemon: DockerDaemon | undefined;

afterAll(async () => {
  await daemon?.stop();
  rmSync(work, { recursive: true, force: true });
}, 120_000);

function driver(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [DRIVER, ...args], {
    encoding: "utf8",
    input: "",
    env: { PATH: process.env.PATH, ...env },
    timeout: 60_000,
  });
}

describe("openshell-driver-docker (process)", () => {
  it("fails at start, naming DOCKER_HOST, when no daemon answers", () => {
    const result = driver(
      [
        "--bind-socket",
        join(work, "d.sock"),
        "--state-dir",
        join(work, "state"),
        "--openshell-endpoint",
        "http://127.0.0.1:9",
        "--sandbox-image",
        "x:1",
        "--supervisor-bin",
        work,
      ],
      { DOCKER_HOST: `unix://${join(work, "no-docker.sock")}` },
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`Docker is not running: no socket at ${join(work, "no-docker.sock")}`);
    expect(result.stderr).toContain("DOCKER_HOST");
  });

  it("refuses to start without its required settings, naming each", () => {
    const result = driver(["--bind-socket", join(work, "d.sock"), "--state-dir", join(work, "state")], {});
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--openshell-endpoint (OPENSHELL_GRPC_ENDPOINT) is required");
  });

  it.skipIf(!isRoot)(
    "doctor: a daemon that answers, its storage driver and runtime; an unknown runtime is named with its fix",
    async () => {
      daemon = await startDockerDaemon({
        runDir: "/run/openshell-dd-docker",
        dataRoot: "/var/lib/openshell-dd-docker",
        addressPool: "base=10.215.0.0/16,size=24",
      });
      const ok = driver(["doctor"], { DOCKER_HOST: daemon.host });
      expect(ok.stdout).toContain(`daemon: ${daemon.host} answers`);
      expect(ok.stdout).toMatch(/storage driver: \w+/);
      expect(ok.stdout).toContain("ok   runtime: runc");
      const runsc = driver(["doctor", "--runtime", "no-such-runtime"], { DOCKER_HOST: daemon.host });
      expect(runsc.status).toBe(1);
      expect(runsc.stdout).toContain("FAIL runtime: no-such-runtime is not one of the daemon's runtimes");
      const none = driver(["doctor"], { DOCKER_HOST: `unix://${join(work, "no-docker.sock")}` });
      expect(none.status).toBe(1);
      expect(none.stdout).toContain("FAIL Docker is not running");
    },
    120_000,
  );
});
