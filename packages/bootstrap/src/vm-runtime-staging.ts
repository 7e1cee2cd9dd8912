import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { OpenShellError } from "@openshell/core";
import type { BootstrapProgress } from "./bootstrap-inputs.js";
import { installedPackageDir } from "./gateway-binaries.js";

/** Lines of the staging script's stderr kept for the error when it fails. */
const TAIL_LINES = 12;

/**
 * Makes sure the VM runtime of the installed `@openshell/driver-vm` is staged before a gateway
 * starts with the VM driver: runs the package's `runtime/stage-vm-runtime.sh`, which answers at
 * once when the runtime for its content key (its scripts, the supervisor bundle it depends on, the
 * Node and kernel versions) is already staged (by this install, another one of the same version,
 * or a checkout's set-up) and points `current` at it; otherwise it builds it (root, a few minutes),
 * and its progress lines are shown as they come. The guest's Node is this CLI's Node unless
 * OPENSHELL_VM_NODE_DIR names one. Nothing to do when the driver package does not resolve (the
 * gateway then reports the missing driver or runtime itself).
 */
export async function ensureVmRuntimeStaged(
  progress: BootstrapProgress,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  const driverDir = installedPackageDir("@openshell/driver-vm");
  const script = driverDir && join(driverDir, "runtime", "stage-vm-runtime.sh");
  if (!script || !existsSync(script)) return undefined;
  const childEnv: NodeJS.ProcessEnv = { ...env };
  if (!childEnv.OPENSHELL_VM_NODE_DIR && process.versions.node.split(".")[0] === "24")
    childEnv.OPENSHELL_VM_NODE_DIR = dirname(dirname(process.execPath));

  const tail: string[] = [];
  let announced = false;
  const child = spawn("bash", [script], { stdio: ["ignore", "pipe", "pipe"], env: childEnv });
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  let pending = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      if (/\berror:/.test(line)) continue; // reported once, in the failure below
      if (!announced) {
        progress.note(
          "• Staging the VM runtime (first use of this version: kernel, guest image; a few minutes)",
        );
        announced = true;
      }
      progress.note(`  ${line}`);
    }
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  if (pending.trim()) tail.push(pending);
  if (code !== 0) {
    throw new OpenShellError(
      "failed_precondition",
      `cannot stage the VM runtime of this version (${script}):\n${tail.join("\n")}`,
    );
  }
  return stdout.trim().split("\n").pop();
}
