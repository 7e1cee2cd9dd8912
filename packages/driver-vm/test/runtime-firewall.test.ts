import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hostTscKhz } from "../src/host-tsc.js";
import { qemuArgs } from "../src/qemu-command.js";
import { locateVmRuntime } from "../src/vm-runtime.js";

/** A guest that never gets to "ready" powers off by itself in well under this, even under TCG. */
const POWER_OFF_TIMEOUT_MS = 150_000;

/**
 * Issue 10 item 8, failing closed: a guest whose host firewall cannot be installed must not start
 * the supervisor. Booted here with the staged runtime's initramfs minus its nf_tables modules (what
 * an initramfs from before the firewall would do with today's root filesystem).
 */
describe("the guest's host firewall fails closed", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it(
    "without nf_tables the init logs why, starts no supervisor and powers off",
    async () => {
      const runtime = locateVmRuntime();
      const dir = mkdtempSync(join(tmpdir(), "osvm-fw-"));
      dirs.push(dir);

      const unpacked = join(dir, "initramfs");
      mkdirSync(unpacked);
      execFileSync("bash", ["-c", `gzip -dc '${runtime.initrd}' | (cd '${unpacked}' && cpio -idm --quiet)`]);
      const modules = readFileSync(join(unpacked, "modules.list"), "utf8").split("\n");
      const kept = modules.filter((line) => !/^nf/.test(line));
      expect(modules.length - kept.length).toBeGreaterThanOrEqual(2); // nf_tables and its helpers
      writeFileSync(join(unpacked, "modules.list"), kept.join("\n"));
      const initrd = join(dir, "initrd-without-nftables.img");
      execFileSync("bash", [
        "-c",
        `cd '${unpacked}' && find . | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet | gzip -1 > '${initrd}'`,
      ]);

      const disk = join(dir, "disk.qcow2");
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", runtime.baseDisk, disk]);
      const envFile = join(dir, "env");
      writeFileSync(
        envFile,
        [
          "OPENSHELL_SANDBOX_ID=firewall-check",
          "OPENSHELL_SANDBOX=firewall-check",
          "OPENSHELL_ENDPOINT=http://host.openshell.internal:1",
          "OPENSHELL_SUPERVISOR_TOKEN=firewall-check",
          "OPENSHELL_SSH_SOCKET_PATH=/run/openshell/ssh.sock",
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      const consoleLog = join(dir, "console.log");
      const args = qemuArgs({
        qemuBinary: "qemu-system-x86_64",
        accelerator: "tcg",
        vcpus: 2,
        memMib: 512,
        kernel: runtime.kernel,
        initrd,
        disk,
        envFile,
        consoleLog,
        pidFile: join(dir, "qemu.pid"),
        qmpSocket: join(dir, "qmp.sock"),
        tscKhz: hostTscKhz(),
      });
      const qemu = spawn("qemu-system-x86_64", args, { stdio: "ignore" });
      const exited = new Promise<void>((resolve) => qemu.once("exit", () => resolve()));
      const timer = setTimeout(() => qemu.kill("SIGKILL"), POWER_OFF_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);

      const text = readFileSync(consoleLog, "latin1");
      expect(text, text.slice(-3000)).toContain("OPENSHELL-VM-INIT error: cannot install the host firewall");
      expect(text).toContain("the supervisor is not started");
      expect(text).toContain("OPENSHELL-VM-INIT poweroff");
      expect(text).not.toContain("OPENSHELL-VM-INIT ready");
      expect(text).not.toContain("LIFECYCLE");
    },
    POWER_OFF_TIMEOUT_MS + 30_000,
  );
});
