import { CONTROL_PORT_NAME } from "./vm-control-channel.js";

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
  /**
   * Base path of the control channel's FIFOs (`<base>.in`, `<base>.out`, which must exist; see
   * vm-control-channel.ts). The driver's VMs always have one; boot checks and benches need none.
   */
  controlPipe?: string;
  /** A memory snapshot to restore instead of booting (QEMU starts paused once it is loaded). */
  incomingSnapshot?: string;
  /** Boot a template: the guest init stops before the sandbox's environment and waits for an identity. */
  template?: boolean;
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
/** The guest's network backend (QMP `set_link` takes it). */
export const NETDEV_ID = "net0";

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
    `user,id=${NETDEV_ID}`,
    "-device",
    `virtio-net-device,netdev=${NETDEV_ID}`,
    "-fw_cfg",
    `name=opt/openshell/env,file=${launch.envFile}`,
    ...tlsFwCfg(launch.guestTls),
    // The control channel (virtio-serial): how the driver talks to a running guest, e.g. after a
    // restore (fw_cfg cannot change while the guest runs).
    ...controlChannel(launch.controlPipe),
    "-qmp",
    `unix:${launch.qmpSocket},server=on,wait=off`,
    "-pidfile",
    launch.pidFile,
    // -S: a loaded snapshot stays paused until the driver has checked the file's hash and says `cont`
    // (QEMU would otherwise start the guest as soon as the stream is in).
    ...(launch.incomingSnapshot
      ? ["-S", "-incoming", `exec:${migrationReadCommand(launch.incomingSnapshot)}`]
      : []),
  ];
}

function controlChannel(pipeBase: string | undefined): string[] {
  if (!pipeBase) return [];
  return [
    "-device",
    "virtio-serial-device,max_ports=2",
    "-chardev",
    `pipe,id=control0,path=${pipeBase}`,
    "-device",
    `virtserialport,chardev=control0,name=${CONTROL_PORT_NAME}`,
  ];
}

/** `'…'` for /bin/sh: QEMU runs `exec:` migration URIs through `sh -c`. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** The command QEMU's `exec:` migration reads a snapshot file with. */
function migrationReadCommand(file: string): string {
  return `cat ${shellQuote(file)}`;
}

/**
 * The command QEMU's `exec:` migration writes a snapshot with: private from its first byte
 * (umask 077: it holds guest memory), renamed into place only once complete, so a half-written
 * file never looks like a snapshot.
 */
export function migrationWriteCommand(tmpFile: string, file: string): string {
  return `umask 077 && cat > ${shellQuote(tmpFile)} && mv -f ${shellQuote(tmpFile)} ${shellQuote(file)}`;
}

export function kernelCommandLine(launch: Pick<QemuLaunch, "accelerator" | "tscKhz" | "template">): string {
  // cryptomgr.notests: the kernel's crypto self-tests cost ~0.5 s of a TCG boot.
  const base = `console=ttyS0 root=/dev/vda rw quiet panic=-1 cryptomgr.notests=1${launch.template ? " openshell.template=1" : ""}`;
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
