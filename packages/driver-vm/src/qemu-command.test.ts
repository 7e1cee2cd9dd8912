import { describe, expect, it } from "vitest";
import { migrationWriteCommand, qemuArgs, shellQuote } from "./qemu-command.js";

const launch = {
  qemuBinary: "qemu-system-x86_64",
  accelerator: "tcg" as const,
  vcpus: 2,
  memMib: 1024,
  kernel: "/rt/vmlinuz",
  initrd: "/rt/initrd.img",
  disk: "/s/disk.qcow2",
  envFile: "/s/env",
  consoleLog: "/s/console.log",
  pidFile: "/s/qemu.pid",
  qmpSocket: "/s/qmp.sock",
};

describe("qemuArgs", () => {
  it("builds a microvm with the sandbox disk, user networking, fw_cfg env, console file and pidfile", () => {
    const args = qemuArgs(launch).join(" ");
    expect(args).toContain("-accel tcg -cpu max -machine microvm,acpi=on -m 1024 -smp 2");
    expect(args).toContain("-drive id=disk0,file=/s/disk.qcow2,format=qcow2");
    expect(args).toContain("-netdev user,id=net0");
    expect(args).not.toContain("hostfwd");
    expect(args).toContain("-fw_cfg name=opt/openshell/env,file=/s/env");
    expect(args).toContain(
      "-chardev file,id=console0,path=/s/console.log,append=on -serial chardev:console0",
    );
    expect(args).toContain("-pidfile /s/qemu.pid");
  });

  it("gives a TCG guest the host's TSC so a busy host cannot hang its boot", () => {
    expect(qemuArgs({ ...launch, tscKhz: 2596148 }).join(" ")).toContain(
      "cryptomgr.notests=1 tsc_early_khz=2596148 tsc=reliable",
    );
    expect(qemuArgs({ ...launch, accelerator: "kvm", tscKhz: 2596148 }).join(" ")).not.toContain(
      "tsc_early_khz",
    );
  });

  it("hands client TLS files to the guest as fw_cfg entries", () => {
    const args = qemuArgs({ ...launch, guestTls: { ca: "/t/ca", cert: "/t/crt", key: "/t/key" } }).join(" ");
    expect(args).toContain("-fw_cfg name=opt/openshell/tls/ca.crt,file=/t/ca");
    expect(args).toContain("-fw_cfg name=opt/openshell/tls/tls.key,file=/t/key");
    expect(qemuArgs(launch).join(" ")).not.toContain("opt/openshell/tls");
  });

  it("bounds TCG's translation cache and passes discards through to the overlay", () => {
    const args = qemuArgs({ ...launch, tcgTbMib: 128 }).join(" ");
    expect(args).toContain("-accel tcg,tb-size=128 ");
    expect(args).toContain("cache=writeback,discard=unmap -device virtio-blk-device,drive=disk0,discard=on");
    expect(qemuArgs({ ...launch, accelerator: "kvm", tcgTbMib: 128 }).join(" ")).toContain("-accel kvm ");
  });

  it("gives the guest a free-page-reporting balloon, so memory it frees returns to the host", () => {
    expect(qemuArgs(launch).join(" ")).toContain("-device virtio-balloon-device,free-page-reporting=on");
    expect(qemuArgs({ ...launch, freePageReporting: false }).join(" ")).not.toContain("balloon");
  });

  it("uses the host CPU under KVM", () => {
    expect(qemuArgs({ ...launch, accelerator: "kvm" }).join(" ")).toContain("-accel kvm -cpu host");
  });

  it("gives the driver's VMs a virtio-serial control port on a pipe chardev; restores read the snapshot through sh", () => {
    expect(qemuArgs(launch).join(" ")).not.toContain("virtio-serial");
    const args = qemuArgs({ ...launch, controlPipe: "/s/control", incomingSnapshot: "/s/it's.snap" });
    expect(args.join(" ")).toContain(
      "-device virtio-serial-device,max_ports=2 -chardev pipe,id=control0,path=/s/control -device virtserialport,chardev=control0,name=org.openshell.control",
    );
    // Paused once loaded (-S): the driver checks the file's hash before `cont`.
    expect(args.slice(-3)).toEqual(["-S", "-incoming", "exec:cat '/s/it'\\''s.snap'"]);
    expect(qemuArgs(launch)).not.toContain("-S");
  });
});

describe("migration commands", () => {
  it("quotes paths for sh and writes a private temp file renamed into place when complete", () => {
    expect(shellQuote("a b'c")).toBe("'a b'\\''c'");
    expect(migrationWriteCommand("/s/m.tmp", "/s/m")).toBe(
      "umask 077 && cat > '/s/m.tmp' && mv -f '/s/m.tmp' '/s/m'",
    );
  });
});
