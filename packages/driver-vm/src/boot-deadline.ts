import type { Accelerator } from "./qemu-command.js";

/** Seconds a boot gets on an idle host before the driver gives up on it. */
const DEFAULT_BOOT_TIMEOUT_S: Record<Accelerator, number> = { kvm: 60, tcg: 180 };

export interface BootDeadlineInput {
  accelerator: Accelerator;
  /** `--boot-timeout-secs`: replaces the accelerator's default (still scaled by load). */
  baseSeconds: number | undefined;
  /** The host's 1-minute load average and CPU count. */
  loadAverage: number;
  cpus: number;
  /** VMs of this driver booting right now, this one included. */
  concurrentBoots: number;
}

/**
 * How long a VM may take to reach its init's "ready": the accelerator's allowance, stretched when
 * the host is busier than it has CPUs (load average, or more VMs booting at once than CPUs), since
 * a guest's boot then gets proportionally less CPU.
 */
export function bootDeadlineMs(input: BootDeadlineInput): number {
  const base = input.baseSeconds ?? DEFAULT_BOOT_TIMEOUT_S[input.accelerator];
  const cpus = Math.max(1, input.cpus);
  const scale = Math.max(1, input.loadAverage / cpus, input.concurrentBoots / cpus);
  return Math.round(base * scale * 1000);
}

/** A kernel says nothing for its first second or more (`quiet`): never call a boot stalled sooner. */
const MIN_BOOT_SILENCE_MS = 10_000;

/**
 * How long a booting guest's console may stay silent before the boot counts as stalled: a third of
 * its deadline (a slow boot still prints its milestones every few seconds), at least 10 s.
 */
export function bootSilenceMs(deadlineMs: number): number {
  return Math.max(MIN_BOOT_SILENCE_MS, Math.round(deadlineMs / 3));
}
