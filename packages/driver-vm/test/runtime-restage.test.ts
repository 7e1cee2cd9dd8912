import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectToDriver, type DriverConnection } from "@openshell/driver-sdk";
import { pidsOf } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";
import { locateVmRuntime } from "../src/vm-runtime.js";

const DRIVER = join(import.meta.dirname, "..", "dist", "openshell-driver-vm.js");
const STAGE = join(import.meta.dirname, "..", "runtime", "stage-vm-runtime.sh");
const RUNTIME_FILES = ["vmlinux", "vmlinuz", "initrd.img", "rootfs.qcow2"];

/**
 * Issue 10 item 9: a second clone's set-up staged a runtime under another key and pruned the one a
 * running driver had loaded; that driver's next create failed ("could not open kernel file").
 * Here runtime A (the real staged one, hard-linked into a private runtime root) is replaced by B
 * and pruned by the staging script's own prune while a real driver runs on A.
 */
describe("re-staging the VM runtime under a running driver", () => {
  const dirs: string[] = [];
  let child: ChildProcess | undefined;
  let connection: DriverConnection | undefined;

  afterEach(async () => {
    connection?.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    for (const dir of dirs.splice(0)) {
      for (const pid of pidsOf(/^qemu-system/, dir)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A copy of the staged runtime under `key` (hard links), made `current` in `root`. */
  function stageAs(root: string, key: string): void {
    const real = locateVmRuntime();
    mkdirSync(join(root, key), { recursive: true });
    for (const name of RUNTIME_FILES) {
      if (existsSync(join(real.dir, name))) linkSync(join(real.dir, name), join(root, key, name));
    }
    writeFileSync(join(root, key, "manifest.json"), JSON.stringify({ ...real.manifest, key }));
    rmSync(join(root, "current"), { force: true });
    symlinkSync(key, join(root, "current"));
  }

  it("a runtime pruned by a later staging still boots the driver's next sandbox", async () => {
    const root = mkdtempSync(join(tmpdir(), "osvm-rt-"));
    const state = mkdtempSync(join(tmpdir(), "osvm-"));
    dirs.push(root, state);
    stageAs(root, "aaaaaaaaaaaaaaaa");

    const socket = join(state, "d.sock");
    child = spawn(
      process.execPath,
      [DRIVER, "--bind-socket", socket, "--state-dir", state, "--openshell-endpoint", "http://127.0.0.1:1"],
      {
        stdio: ["pipe", "ignore", "inherit"],
        env: {
          ...process.env,
          OPENSHELL_VM_ACCEL: "tcg",
          OPENSHELL_VM_RUNTIME_DIR: root,
          OPENSHELL_VM_TEMPLATES: "off",
        },
      },
    );
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    connection = connectToDriver(socket);
    expect((await connection.client.getCapabilities({})).driverName).toBe("openshell-driver-vm");

    // Another clone stages runtime B and prunes: A is removed (no process holds its files open).
    stageAs(root, "bbbbbbbbbbbbbbbb");
    const prune = spawnSync("bash", [STAGE, "--prune"], {
      encoding: "utf8",
      env: { ...process.env, OPENSHELL_VM_RUNTIME_DIR: root },
    });
    expect(prune.status, prune.stderr).toBe(0);
    expect(prune.stderr).toContain("removed older runtime aaaaaaaaaaaaaaaa");
    expect(existsSync(join(root, "aaaaaaaaaaaaaaaa"))).toBe(false);

    // The running driver still creates and boots sandboxes from the runtime it loaded.
    const id = "99999999-2222-3333-4444-555555555555";
    await connection.client.createSandbox({ sandbox: { id, name: "after-restage", spec: {} } });
    const consoleLog = join(state, "sandboxes", id, "console.log");
    const booted = () =>
      existsSync(consoleLog) && readFileSync(consoleLog, "utf8").includes("OPENSHELL-VM-INIT ready");
    const qemuRuns = () => pidsOf(/^qemu-system/, state).length > 0;
    for (let i = 0; i < 900 && !booted() && qemuRuns(); i++) await new Promise((r) => setTimeout(r, 100));
    const qemuLog = join(state, "sandboxes", id, "qemu.log");
    // Before the fix: "qemu-system-x86_64: could not open kernel file '…/aaaaaaaaaaaaaaaa/vmlinux'".
    expect(booted(), existsSync(qemuLog) ? readFileSync(qemuLog, "utf8") : "no qemu.log").toBe(true);
    expect((await connection.client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
    for (let i = 0; i < 200 && pidsOf(/^qemu-system/, state).length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(pidsOf(/^qemu-system/, state)).toEqual([]);
  }, 180_000);
});
