import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { findRepoRoot } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";

const REPO = findRepoRoot(import.meta.dirname);
const SUPERVISOR = join("packages", "sandbox-supervisor");

/**
 * A second clone of the same commit at another path, holding what the staging key reads: the
 * runtime scripts, scripts/lib, the supervisor bundle, the launcher's source and the supervisor's native modules laid out as pnpm does
 * (package symlinks into node_modules/.pnpm, relative to the clone).
 */
function cloneKeyInputs(to: string): void {
  for (const path of [
    join("packages", "driver-vm", "runtime"),
    join("scripts", "lib"),
    join(SUPERVISOR, "dist", "openshell-sandbox.js"),
    join(SUPERVISOR, "native", "openshell-launch.c"),
    join(SUPERVISOR, "native", "build.sh"),
  ]) {
    cpSync(join(REPO, path), join(to, path), { recursive: true });
  }
  for (const dep of ["ssh2", "node-pty"]) {
    const real = relative(REPO, realpathSync(join(REPO, SUPERVISOR, "node_modules", dep)));
    cpSync(join(REPO, real, "package.json"), join(to, real, "package.json"));
    const link = join(to, SUPERVISOR, "node_modules", dep);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), join(to, real)), link);
  }
}

function printKey(repo: string, runtimeDir: string): string {
  const run = spawnSync(
    "bash",
    [join(repo, "packages", "driver-vm", "runtime", "stage-vm-runtime.sh"), "--print-key"],
    {
      encoding: "utf8",
      env: { ...process.env, OPENSHELL_VM_RUNTIME_DIR: runtimeDir },
    },
  );
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.trim();
}

describe("the VM runtime's content key (stage-vm-runtime.sh --print-key)", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("is the same for two clones of one commit at different paths, and changes with an input", () => {
    const clone = mkdtempSync(join(tmpdir(), "osvm-clone-"));
    const runtimes = mkdtempSync(join(tmpdir(), "osvm-rt-"));
    dirs.push(clone, runtimes);
    cloneKeyInputs(clone);
    const key = printKey(REPO, runtimes);
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(printKey(clone, runtimes)).toBe(key);

    appendFileSync(join(clone, SUPERVISOR, "dist", "openshell-sandbox.js"), "// changed\n");
    expect(printKey(clone, runtimes)).not.toBe(key);
  });
});
