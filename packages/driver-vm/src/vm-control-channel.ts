import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, constants, existsSync, openSync, rmSync, writeSync } from "node:fs";
import { promisify } from "node:util";
import { OpenShellError } from "@openshell/core";

const run = promisify(execFile);

/** Bytes of host entropy sent to a restored guest (credited to its kernel's pool, then a CRNG reseed). */
const RESTORE_ENTROPY_BYTES = 64;

/** After a sandbox's own snapshot was restored: the time, fresh entropy (the init then signals the supervisor). */
export function restoredLine(): string {
  return `restored ${(Date.now() / 1000).toFixed(3)} ${randomBytes(RESTORE_ENTROPY_BYTES).toString("base64")}`;
}

/** After the driver paused a running VM (to copy it): the time. */
export function clockLine(): string {
  return `clock ${(Date.now() / 1000).toFixed(3)}`;
}

/**
 * After a template was restored for a new sandbox (`identity`), or another sandbox's running VM
 * for a fork (`reidentify`: the init first ends every process it was copied with): the time, fresh
 * entropy, then its environment file and TLS files (base64, "-" for none), which the init uses
 * instead of fw_cfg's.
 */
export function identityLine(
  env: Buffer,
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined,
  command: "identity" | "reidentify" = "identity",
): string {
  const b64 = (data: Buffer | undefined) => (data && data.length > 0 ? data.toString("base64") : "-");
  return [
    command,
    (Date.now() / 1000).toFixed(3),
    randomBytes(RESTORE_ENTROPY_BYTES).toString("base64"),
    b64(env),
    b64(tls?.ca),
    b64(tls?.cert),
    b64(tls?.key),
  ].join(" ");
}

/** The virtio-serial port's name the guest init looks for (`/sys/class/virtio-ports/*\/name`). */
export const CONTROL_PORT_NAME = "org.openshell.control";

/**
 * The host side of a VM's control channel: QEMU's `pipe` chardev on two FIFOs, `<base>.in` (host →
 * guest) and `<base>.out` (guest → host, unused: the guest answers on its console). QEMU opens both
 * read-write, so the guest's port is always connected and its reader blocks; the driver writes a
 * line whenever it needs to. Protocol: architecture/vm-snapshots.md ("Control channel").
 */
export class VmControlChannel {
  constructor(readonly base: string) {}

  /** Makes the two FIFOs (0600) if missing; QEMU refuses to start without them. */
  async ensure(): Promise<void> {
    for (const fifo of [`${this.base}.in`, `${this.base}.out`]) {
      if (existsSync(fifo)) continue;
      await run("mkfifo", ["-m", "0600", fifo]).catch((error: Error) => {
        throw new OpenShellError("internal", `cannot create the VM's control FIFO ${fifo}: ${error.message}`);
      });
    }
  }

  /**
   * Sends one command line to the guest. Never blocks: with no QEMU holding the FIFO open the
   * open fails (ENXIO), and a full FIFO (the guest is not reading) fails the write (EAGAIN).
   */
  send(line: string): void {
    if (/[\r\n]/.test(line))
      throw new OpenShellError("internal", "a control line cannot contain a line break");
    let fd: number;
    try {
      fd = openSync(`${this.base}.in`, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (error) {
      throw new OpenShellError(
        "unavailable",
        `the VM's control channel is not open: ${(error as Error).message}`,
      );
    }
    try {
      writeSync(fd, `${line}\n`);
    } catch (error) {
      throw new OpenShellError(
        "unavailable",
        `cannot write to the VM's control channel: ${(error as Error).message}`,
      );
    } finally {
      closeSync(fd);
    }
  }

  remove(): void {
    rmSync(`${this.base}.in`, { force: true });
    rmSync(`${this.base}.out`, { force: true });
  }
}
