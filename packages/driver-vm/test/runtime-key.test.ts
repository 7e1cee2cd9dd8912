import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { findRepoRoot } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";

const REPO = findRepoRoot(import.meta.dirname);
const SUPERVISOR = join("packages", "sandbox-supervisor");
const NATIVE = ["ssh2", "node-pty"];

/**
 * A second clone of the same commit at another path, holding what the staging key reads: the
 * runtime scripts (with runtime/lib), the supervisor bundle and staging helper, the launcher's source, the driver's
 * link to the supervisor package and the supervisor's native modules laid out as pnpm does
 * (package symlinks into node_modules/.pnpm, relative to the clone).
 */
function cloneKeyInputs(to: string): void {
  for (const path of [
    join("packages", "driver-vm", "runtime"),
    join(SUPERVISOR, "dist", "openshell-sandbox.js"),
    join(SUPERVISOR, "native", "openshell-launch.c"),
    join(SUPERVISOR, "native", "build.sh"),
    join(SUPERVISOR, "staging", "native-closure.mjs"),
    join(SUPERVISOR, "package.json"),
  ]) {
    cpSync(join(REPO, path), join(to, path), { recursive: true });
  }
  const supervisorLink = join(
    to,
    "packages",
    "driver-vm",
    "node_modules",
    "@openshell",
    "sandbox-supervisor",
  );
  mkdirSync(dirname(supervisorLink), { recursive: true });
  symlinkSync(relative(dirname(supervisorLink), join(to, SUPERVISOR)), supervisorLink);
  for (const dep of NATIVE) {
    const real = relative(REPO, realpathSync(join(REPO, SUPERVISOR, "node_modules", dep)));
    cpSync(join(REPO, real, "package.json"), join(to, real, "package.json"));
    const link = join(to, SUPERVISOR, "node_modules", dep);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), join(to, real)), link);
  }
}

/**
 * The same inputs laid out as `npm install -g openshell` does: the driver, the supervisor and the
 * native modules side by side in the CLI package's node_modules, no repository around them.
 */
function npmInstallKeyInputs(prefix: string): string {
  const modules = join(prefix, "lib", "node_modules", "openshell", "node_modules");
  cpSync(
    join(REPO, "packages", "driver-vm", "runtime"),
    join(modules, "@openshell", "driver-vm", "runtime"),
    {
      recursive: true,
    },
  );
  const supervisor = join(modules, "@openshell", "sandbox-supervisor");
  for (const path of [
    "dist/openshell-sandbox.js",
    "native/openshell-launch.c",
    "native/build.sh",
    "staging/native-closure.mjs",
    "package.json",
  ])
    cpSync(join(REPO, SUPERVISOR, path), join(supervisor, path));
  for (const dep of NATIVE)
    cpSync(join(REPO, SUPERVISOR, "node_modules", dep, "package.json"), join(modules, dep, "package.json"));
  return join(modules, "@openshell", "driver-vm");
}

function printKey(repo: string, runtimeDir: string): string {
  return printKeyOf(join(repo, "packages", "driver-vm"), runtimeDir);
}

function printKeyOf(driverPackage: string, runtimeDir: string): string {
  const run = spawnSync("bash", [join(driverPackage, "runtime", "stage-vm-runtime.sh"), "--print-key"], {
    encoding: "utf8",
    env: { ...process.env, OPENSHELL_VM_RUNTIME_DIR: runtimeDir },
  });
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

  it("is the same for an npm install of the same packages, so it reuses a runtime a checkout staged", () => {
    const prefix = mkdtempSync(join(tmpdir(), "osvm-npm-"));
    const runtimes = mkdtempSync(join(tmpdir(), "osvm-rt-"));
    dirs.push(prefix, runtimes);
    const driver = npmInstallKeyInputs(prefix);
    expect(printKeyOf(driver, runtimes)).toBe(printKey(REPO, runtimes));
  });
});
