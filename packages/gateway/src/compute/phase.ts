import type { compute } from "@openshell/proto";
import { SandboxPhase } from "@openshell/proto";

const PROVISIONING_REASONS = new Set(["reconcilererror", "dependenciesnotready", "starting"]);

/**
 * Upstream's derive_phase: the phase a driver's status implies.
 * deleting -> DELETING; Ready=True -> READY; Ready=False with a transient reason -> PROVISIONING,
 * with any other reason -> ERROR; no Ready condition -> PROVISIONING; no status -> UNKNOWN.
 */
export function derivePhase(status: compute.DriverSandboxStatus | undefined): SandboxPhase {
  if (!status) return SandboxPhase.UNKNOWN;
  if (status.deleting) return SandboxPhase.DELETING;
  const ready = status.conditions.find((c) => c.type === "Ready");
  if (!ready) return SandboxPhase.PROVISIONING;
  if (ready.status.toLowerCase() === "true") return SandboxPhase.READY;
  if (ready.status.toLowerCase() === "false") {
    return PROVISIONING_REASONS.has(ready.reason.toLowerCase())
      ? SandboxPhase.PROVISIONING
      : SandboxPhase.ERROR;
  }
  return SandboxPhase.PROVISIONING;
}

export function phaseName(phase: SandboxPhase): string {
  return SandboxPhase[phase] ?? `PHASE_${phase}`;
}
