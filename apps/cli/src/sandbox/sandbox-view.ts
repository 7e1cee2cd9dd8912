import { toJson } from "@bufbuild/protobuf";
import { type Sandbox, SandboxPhase, SandboxSchema } from "@openshell/proto";

const PHASE_NAMES: Record<SandboxPhase, string> = {
  [SandboxPhase.UNSPECIFIED]: "Unknown",
  [SandboxPhase.PROVISIONING]: "Provisioning",
  [SandboxPhase.READY]: "Ready",
  [SandboxPhase.ERROR]: "Error",
  [SandboxPhase.DELETING]: "Deleting",
  [SandboxPhase.UNKNOWN]: "Unknown",
  [SandboxPhase.STOPPING]: "Stopping",
  [SandboxPhase.STOPPED]: "Stopped",
  [SandboxPhase.STARTING]: "Starting",
};

export function phaseName(phase: SandboxPhase): string {
  return PHASE_NAMES[phase] ?? "Unknown";
}

/** The Ready condition's "reason: message", the best one-line explanation of a phase. */
export function readyDetail(sandbox: Sandbox): string | undefined {
  const ready = sandbox.status?.conditions.find((condition) => condition.type === "Ready");
  if (!ready || (!ready.reason && !ready.message)) return undefined;
  return [ready.reason, ready.message].filter(Boolean).join(": ");
}

/**
 * What the sandbox keeps on the driver's host, for `sandbox get` ("disk 12 MiB, memory snapshot
 * 225 MiB"); undefined when the driver does not report it.
 */
export function storageSummary(sandbox: Sandbox): string | undefined {
  const storage = sandbox.status?.storage;
  if (!storage) return undefined;
  const mib = (bytes: bigint) =>
    `${(Number(bytes) / 2 ** 20).toFixed(Number(bytes) < 10 * 2 ** 20 ? 1 : 0)} MiB`;
  const parts = [`disk ${mib(storage.diskBytes)}`];
  if (storage.memorySnapshotBytes > 0n) parts.push(`memory snapshot ${mib(storage.memorySnapshotBytes)}`);
  return `${parts.join(", ")} on the gateway's host`;
}

/** Upstream's JSON mapping of the Sandbox message (what `-o json` prints). */
export function sandboxJson(sandbox: Sandbox): unknown {
  return toJson(SandboxSchema, sandbox, { alwaysEmitImplicit: false });
}

export function age(createdAtMs: bigint, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - Number(createdAtMs)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}
