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

/** What `chooseDriver` asks of the host; the defaults are the real ones, a test passes its own. */
export interface DriverProbes {
  /** KVM boots a guest? Absent: no VM driver package to ask. */
  kvm?: KvmProbe | undefined;
  /** The staged VM runtime's directory (staging it when needed), or undefined without a driver package. */
  stageVmRuntime?: (progress: BootstrapProgress, env: NodeJS.ProcessEnv) => Promise<string | undefined>;
  /** Resolves when a Docker daemon answers at DOCKER_HOST; rejects saying why not. */
  dockerAnswers?: (env: NodeJS.ProcessEnv) => Promise<void>;
}

/** Resolves when a Docker daemon answers at DOCKER_HOST (or the default socket); rejects saying why not. */
export async function dockerDaemonAnswers(env: NodeJS.ProcessEnv): Promise<void> {
  // Loaded here only: dockerode is the Docker deployment's (the `./docker` subpath).
  const { connectDocker } = await import("./docker/docker-connection.js");
  await connectDocker(env);
}

/** Where the Docker API is, for messages: DOCKER_HOST, else the default socket. */
export const dockerLocation = (env: NodeJS.ProcessEnv): string => env.DOCKER_HOST || "/var/run/docker.sock";

const firstLine = (error: unknown) => OpenShellError.from(error).message.split("\n")[0];

/** Whether KVM boots a guest of the staged VM runtime here, and why (not). */
async function kvmVerdict(
  progress: BootstrapProgress,
  env: NodeJS.ProcessEnv,
  kvm: KvmProbe | undefined,
  stageVmRuntime: NonNullable<DriverProbes["stageVmRuntime"]>,
): Promise<{ boots: boolean; reason: string }> {
  if (!kvm) return { boots: false, reason: "no KVM probe available" };
  let runtime: string | undefined;
  try {
    runtime = await stageVmRuntime(progress, env);
  } catch (error) {
    return { boots: false, reason: `the VM runtime cannot be staged here: ${firstLine(error)}` };
  }
  if (!runtime) return { boots: false, reason: "the VM runtime could not be staged" };
  const vmlinux = join(runtime, "vmlinux");
  const choice = await kvm(existsSync(vmlinux) ? vmlinux : join(runtime, "vmlinuz"));
  return { boots: choice.accelerator === "kvm", reason: choice.reason };
}

/**
 * `gateway start --driver auto`: a microVM when KVM really boots a guest (the VM driver's own probe,
 * a real boot: `/dev/kvm` alone proves nothing here), else Docker when a daemon answers (a container
 * is ready in about a second where a TCG guest takes many; also when the VM runtime cannot be
 * staged here), else a VM under TCG.
 */
export async function chooseDriver(
  progress: BootstrapProgress,
  env: NodeJS.ProcessEnv,
  probes: DriverProbes = {},
): Promise<DriverChoice> {
  const { kvm, stageVmRuntime = ensureVmRuntimeStaged, dockerAnswers = dockerDaemonAnswers } = probes;
  const verdict = await kvmVerdict(progress, env, kvm, stageVmRuntime);
  if (verdict.boots) return { driver: "vm", reason: `auto: KVM boots a guest (${verdict.reason})` };
  try {
    await dockerAnswers(env);
    return {
      driver: "docker",
      reason: `auto: no KVM that boots a guest (${verdict.reason}); Docker at ${dockerLocation(env)} answers`,
    };
  } catch (error) {
    return {
      driver: "vm",
      reason: `auto: no KVM that boots a guest (${verdict.reason}) and no Docker (${firstLine(error)}): microVMs under TCG`,
    };
  }
}
