import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlive, waitUntilGone } from "@openshell/core";
import { afterEach, describe, expect, it } from "vitest";
import { condenseRegisters, VmInstance } from "./vm-instance.js";

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

describe("condenseRegisters", () => {
  it("keeps each vCPU's instruction and stack pointer, privilege level and halt state", () => {
    const cpu = (n: number, rip: string, hlt: number) =>
      [
        `CPU#${n}`,
        "RAX=0000000000000000 RBX=ffff888003f70000 RCX=0000000000000001 RDX=0000000000000000",
        "RSI=0000000000000000 RDI=0000000000000000 RBP=ffffc90000073e70 RSP=ffffc90000073e58",
        `RIP=${rip} RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=${hlt}`,
        "ES =0000 0000000000000000 00000000 00000000",
      ].join("\r\n");
    const text = `${cpu(0, "ffffffff81e3e1f2", 1)}\r\n${cpu(1, "ffffffff8110abcd", 0)}\r\n`;
    expect(condenseRegisters(text)).toBe(
      "CPU#0 RIP=ffffffff81e3e1f2 RSP=ffffc90000073e58 CPL=0 HLT=1; CPU#1 RIP=ffffffff8110abcd RSP=ffffc90000073e58 CPL=0 HLT=0",
    );
    expect(condenseRegisters("")).toBe("no vCPU state");
  });
});
