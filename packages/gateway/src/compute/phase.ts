import type { compute } from "@openshell/proto";
import { SandboxPhase } from "@openshell/proto";

const PROVISIONING_REASONS = new Set(["reconcilererror", "dependenciesnotready", "starting"]);
const STOPPED_REASON = "stopped";

/**
 * Upstream's derive_phase: the phase a driver's status implies.
 * deleting -> DELETING; Ready=True -> READY; Ready=False with a transient reason -> PROVISIONING,
 * reason Stopped (powered off, disk kept) -> STOPPED, any other reason -> ERROR; no Ready condition ->
 * PROVISIONING; no status -> UNKNOWN.
 */
export function derivePhase(status: compute.DriverSandboxStatus | undefined): SandboxPhase {
  if (!status) return SandboxPhase.UNKNOWN;
  if (status.deleting) return SandboxPhase.DELETING;
  const ready = status.conditions.find((c) => c.type === "Ready");
  if (!ready) return SandboxPhase.PROVISIONING;
  if (ready.status.toLowerCase() === "true") return SandboxPhase.READY;
  if (ready.status.toLowerCase() === "false") {
    const reason = ready.reason.toLowerCase();
    if (PROVISIONING_REASONS.has(reason)) return SandboxPhase.PROVISIONING;
    return reason === STOPPED_REASON ? SandboxPhase.STOPPED : SandboxPhase.ERROR;
  }
  return SandboxPhase.PROVISIONING;
}

/**
 * The phase to store when the driver reports `derived` for a sandbox stored as `stored`. The gateway
 * owns DELETING and the power phases: a stop in progress or done stays STOPPING / STOPPED whatever
 * the driver says while its VM goes down, and a start stays STARTING until the driver reports the
 * sandbox ready or failed.
 */
export function phaseAfterSnapshot(stored: SandboxPhase, derived: SandboxPhase): SandboxPhase {
  if (stored === SandboxPhase.DELETING || derived === SandboxPhase.DELETING) return SandboxPhase.DELETING;
  if (stored === SandboxPhase.STOPPING || stored === SandboxPhase.STOPPED) return stored;
  if (stored === SandboxPhase.STARTING && STILL_STARTING.has(derived)) return SandboxPhase.STARTING;
  return derived;
}

const STILL_STARTING = new Set([SandboxPhase.PROVISIONING, SandboxPhase.UNKNOWN, SandboxPhase.STOPPED]);

export function phaseName(phase: SandboxPhase): string {
  return SandboxPhase[phase] ?? `PHASE_${phase}`;
}
