import { execFile } from "node:child_process";
import { promisify } from "node:util";

/** A throw-away qcow2 overlay `disk` on the runtime's base image, as the VM driver makes one. */
export async function createOverlay(baseDisk: string, disk: string): Promise<void> {
  await promisify(execFile)("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", baseDisk, disk]);
}
