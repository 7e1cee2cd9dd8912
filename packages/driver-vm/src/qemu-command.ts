export type Accelerator = "kvm" | "tcg";

/** Client TLS files for an https:// gateway; the guest init copies them to /run/openshell/tls. */
export interface GuestTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface QemuLaunch {
  qemuBinary: string;
  accelerator: Accelerator;
  vcpus: number;
  memMib: number;
  kernel: string;
  initrd: string;
  disk: string;
  envFile: string;
  consoleLog: string;
  pidFile: string;
  qmpSocket: string;
  /** Host TSC in kHz: lets a TCG guest skip TSC calibration (see host-tsc.ts). */
  tscKhz?: number;
  /** TCG's translation cache in MiB (QEMU's default, 1 GiB, is sized for big guests). */
  tcgTbMib?: number;
  /** Memory the guest frees goes back to the host (a never-inflated balloon); default on. */
  freePageReporting?: boolean;
  guestTls?: GuestTlsFiles;
}

/**
 * The QEMU command line of one sandbox: a `microvm` machine (virtio-mmio devices, no firmware
 * scan), the sandbox's copy-on-write disk, user-mode networking (the guest reaches the host as
 * 10.0.2.2 and nothing is published on the host), its environment as a fw_cfg file only root in
 * the guest can read, the serial console in a file, and a QMP socket for clean power-off.
 * Discards pass through (`discard=unmap`): a file deleted in the guest frees the overlay's clusters.
 * A balloon device with free page reporting (never inflated) hands memory the guest has freed back
 * to the host, so a guest whose page cache once filled its RAM does not keep it all in QEMU's RSS.
 */
export function qemuArgs(launch: QemuLaunch): string[] {
  const cpu = launch.accelerator === "kvm" ? "host" : "max";
  return [
    "-name",
    "openshell-sandbox",
    "-accel",
    launch.accelerator === "tcg" && launch.tcgTbMib ? `tcg,tb-size=${launch.tcgTbMib}` : launch.accelerator,
    "-cpu",
    cpu,
    "-machine",
    "microvm,acpi=on",
    "-m",
    String(launch.memMib),
    "-smp",
    String(launch.vcpus),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    // append=on: every boot adds to the same console log instead of truncating the last one.
    "-chardev",
    `file,id=console0,path=${launch.consoleLog},append=on`,
    "-serial",
    "chardev:console0",
    "-kernel",
    launch.kernel,
    "-initrd",
    launch.initrd,
    "-append",
    kernelCommandLine(launch),
    "-drive",
    `id=disk0,file=${launch.disk},format=qcow2,if=none,cache=writeback,discard=unmap`,
    "-device",
    "virtio-blk-device,drive=disk0,discard=on",
    ...(launch.freePageReporting === false
      ? []
      : ["-device", "virtio-balloon-device,free-page-reporting=on"]),
    "-netdev",
    "user,id=net0",
    "-device",
    "virtio-net-device,netdev=net0",
    "-fw_cfg",
    `name=opt/openshell/env,file=${launch.envFile}`,
    ...tlsFwCfg(launch.guestTls),
    "-qmp",
    `unix:${launch.qmpSocket},server=on,wait=off`,
    "-pidfile",
    launch.pidFile,
  ];
}

export function kernelCommandLine(launch: Pick<QemuLaunch, "accelerator" | "tscKhz">): string {
  // cryptomgr.notests: the kernel's crypto self-tests cost ~0.5 s of a TCG boot.
  const base = "console=ttyS0 root=/dev/vda rw quiet panic=-1 cryptomgr.notests=1";
  if (launch.accelerator === "tcg" && launch.tscKhz)
    return `${base} tsc_early_khz=${launch.tscKhz} tsc=reliable`;
  return base;
}

function tlsFwCfg(tls: GuestTlsFiles | undefined): string[] {
  if (!tls) return [];
  return [
    ["ca.crt", tls.ca],
    ["tls.crt", tls.cert],
    ["tls.key", tls.key],
  ].flatMap(([name, file]) => ["-fw_cfg", `name=opt/openshell/tls/${name},file=${file}`]);
}
