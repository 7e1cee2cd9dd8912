import { existsSync } from "node:fs";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { chooseAccelerator } from "@openshell/driver-vm/accelerator";
import type { BootstrapProgress } from "./bootstrap-inputs.js";
import { connectDocker } from "./docker/docker-connection.js";
import { ensureVmRuntimeStaged } from "./vm-runtime-staging.js";

export interface DriverChoice {
  driver: "vm" | "docker";
  /** One sentence, kept in the gateway's metadata (`gateway info`). */
  reason: string;
}

/**
 * `gateway start --driver auto`: a microVM when KVM really boots a guest (the VM driver's own probe,
 * a real boot: `/dev/kvm` alone proves nothing here), else Docker when a daemon answers (a container
 * is ready in about a second where a TCG guest takes many), else a VM under TCG.
 */
export async function chooseDriver(
  progress: BootstrapProgress,
  env: NodeJS.ProcessEnv,
): Promise<DriverChoice> {
  let noKvm = "the VM runtime could not be staged";
  const runtime = await ensureVmRuntimeStaged(progress, env);
  if (runtime) {
    const vmlinux = join(runtime, "vmlinux");
    const kernel = existsSync(vmlinux) ? vmlinux : join(runtime, "vmlinuz");
    const choice = await chooseAccelerator({ qemuBinary: "qemu-system-x86_64", kernel, env });
    if (choice.accelerator === "kvm")
      return { driver: "vm", reason: `auto: KVM boots a guest (${choice.reason})` };
    noKvm = choice.reason;
  }
  try {
    await connectDocker(env);
    return {
      driver: "docker",
      reason: `auto: no KVM that boots a guest (${noKvm}); Docker at ${env.DOCKER_HOST || "/var/run/docker.sock"} answers`,
    };
  } catch (error) {
    return {
      driver: "vm",
      reason: `auto: no KVM that boots a guest (${noKvm}) and no Docker (${OpenShellError.from(error).message.split("\n")[0]}): microVMs under TCG`,
    };
  }
}
