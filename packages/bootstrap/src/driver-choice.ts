import { existsSync } from "node:fs";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import type { BootstrapProgress } from "./bootstrap-inputs.js";
import { ensureVmRuntimeStaged } from "./vm-runtime-staging.js";

/**
 * Whether KVM boots a guest with `kernel`: the VM driver's own probe (`chooseAccelerator` of
 * `@openshell/driver-vm/accelerator`), passed in by the CLI, which depends on that package.
 */
export type KvmProbe = (kernel: string) => Promise<{ accelerator: string; reason: string }>;

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
  probeKvm: KvmProbe | undefined,
): Promise<DriverChoice> {
  let noKvm = probeKvm ? "the VM runtime could not be staged" : "no KVM probe available";
  const runtime = probeKvm && (await ensureVmRuntimeStaged(progress, env));
  if (probeKvm && runtime) {
    const vmlinux = join(runtime, "vmlinux");
    const kernel = existsSync(vmlinux) ? vmlinux : join(runtime, "vmlinuz");
    const choice = await probeKvm(kernel);
    if (choice.accelerator === "kvm")
      return { driver: "vm", reason: `auto: KVM boots a guest (${choice.reason})` };
    noKvm = choice.reason;
  }
  try {
    // Loaded here only: dockerode is the Docker deployment's (the `./docker` subpath).
    const { connectDocker } = await import("./docker/docker-connection.js");
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
