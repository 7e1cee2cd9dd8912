import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlive, waitUntilGone } from "@openshell/core";
import { afterEach, describe, expect, it } from "vitest";
import { VmInstance } from "./vm-instance.js";

const launch = (qemuBinary: string) => ({
  qemuBinary,
  accelerator: "tcg" as const,
  vcpus: 1,
  memMib: 256,
  kernel: "/nonexistent/vmlinuz",
  initrd: "/nonexistent/initrd.img",
});

describe("VmInstance.launch", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("kills a QEMU that never writes its pidfile before failing, so no VM runs untracked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vm-instance-"));
    dirs.push(dir);
    // A stand-in for a QEMU stuck before its pidfile: it records its pid and waits.
    const fake = join(dir, "fake-qemu");
    writeFileSync(fake, `#!/bin/sh\necho $$ > ${dir}/fake.pid\nexec sleep 600\n`);
    chmodSync(fake, 0o755);
    const instance = new VmInstance(dir);
    await expect(instance.launch(launch(fake), 1500)).rejects.toThrow(
      /QEMU did not write its pidfile within 1\.5 s \(killed\)/,
    );
    const pid = Number(readFileSync(join(dir, "fake.pid"), "utf8"));
    await waitUntilGone(pid, 5000);
    expect(isAlive(pid)).toBe(false);
  });

  it("reports the signal that killed the QEMU it launched, once the exit status is in", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vm-instance-"));
    dirs.push(dir);
    // A stand-in QEMU that writes its pidfile and idles with the disk path on its command line.
    const fake = join(dir, "fake-qemu");
    writeFileSync(
      fake,
      `#!${process.execPath}\nconst a = process.argv;\nrequire("node:fs").writeFileSync(a[a.indexOf("-pidfile") + 1], String(process.pid));\nsetInterval(() => {}, 1000);\n`,
    );
    chmodSync(fake, 0o755);
    const instance = new VmInstance(dir);
    const pid = await instance.launch(launch(fake), 10_000);
    process.kill(pid, "SIGKILL");
    await waitUntilGone(pid, 5000);
    await instance.exitStatusKnown(5000);
    expect(instance.exitCause()).toBe("signal SIGKILL");
  });
});
