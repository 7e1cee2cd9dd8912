import { clone, create } from "@bufbuild/protobuf";
import {
  type Sandbox,
  type SandboxCondition,
  SandboxConditionSchema,
  SandboxPhase,
  SandboxSchema,
  SandboxStatusSchema,
} from "@openshell/proto";

/**
 * Gateway-owned readiness (upstream PR #901): a sandbox is READY while its supervisor session is
 * connected. These functions return the updated sandbox, or undefined when nothing changes.
 */
export const READY_REASON = "DependenciesReady";
const READY_MESSAGE = "Supervisor session connected";
export const NOT_READY_REASON = "DependenciesNotReady";
const NOT_READY_MESSAGE = "Supervisor session disconnected";

const STOPPING_REASON = "Stopping";
export const STOPPED_REASON = "Stopped";
const STARTING_REASON = "Starting";

/**
 * Phases a supervisor session does not make READY: DELETING and ERROR, and a sandbox the user
 * stopped (a supervisor that still connects while or after it goes down does not undo the stop).
 */
const NOT_PROMOTED = new Set([
  SandboxPhase.DELETING,
  SandboxPhase.ERROR,
  SandboxPhase.STOPPING,
  SandboxPhase.STOPPED,
]);
const PROMOTED_WHILE_SESSION_LIVE = new Set([
  SandboxPhase.PROVISIONING,
  SandboxPhase.UNKNOWN,
  SandboxPhase.STARTING,
]);

export function promoteOnSessionConnected(sandbox: Sandbox, now = new Date()): Sandbox | undefined {
  if (NOT_PROMOTED.has(sandbox.phase)) return undefined;
  const next = withReadyCondition(sandbox, "True", READY_REASON, READY_MESSAGE, now);
  next.phase = SandboxPhase.READY;
  return unchanged(sandbox, next) ? undefined : next;
}

export function demoteOnSessionDisconnected(sandbox: Sandbox, now = new Date()): Sandbox | undefined {
  if (sandbox.phase !== SandboxPhase.READY) return undefined;
  const next = withReadyCondition(sandbox, "False", NOT_READY_REASON, NOT_READY_MESSAGE, now);
  next.phase = SandboxPhase.PROVISIONING;
  return next;
}

/**
 * The backfill race: a driver snapshot applied after the supervisor connected must not demote the
 * sandbox. When a session is live and the phase is PROVISIONING, UNKNOWN or STARTING, force READY.
 */
export function keepReadyWhileSessionLive(sandbox: Sandbox, sessionLive: boolean, now = new Date()): Sandbox {
  if (!sessionLive) return sandbox;
  if (!PROMOTED_WHILE_SESSION_LIVE.has(sandbox.phase)) return sandbox;
  const next = withReadyCondition(sandbox, "True", READY_REASON, READY_MESSAGE, now);
  next.phase = SandboxPhase.READY;
  return next;
}

/** A user's power change: the phase and a Ready=False condition that says what is going on. */
export function withPowerPhase(
  sandbox: Sandbox,
  phase: SandboxPhase.STOPPING | SandboxPhase.STOPPED | SandboxPhase.STARTING,
  now = new Date(),
): Sandbox {
  const [reason, message] = POWER_CONDITIONS[phase];
  const next = withReadyCondition(sandbox, "False", reason, message(sandbox.name), now);
  next.phase = phase;
  return next;
}

const POWER_CONDITIONS = {
  [SandboxPhase.STOPPING]: [STOPPING_REASON, () => "stop requested; the sandbox is shutting down"],
  [SandboxPhase.STOPPED]: [
    STOPPED_REASON,
    (name: string) => `stopped by the user, disk kept; start it with: openshell sandbox start ${name}`,
  ],
  [SandboxPhase.STARTING]: [STARTING_REASON, () => "start requested; waiting for the supervisor"],
} as const satisfies Record<number, readonly [string, (name: string) => string]>;

function withReadyCondition(
  sandbox: Sandbox,
  status: string,
  reason: string,
  message: string,
  now: Date,
): Sandbox {
  const next = clone(SandboxSchema, sandbox);
  const conditions: SandboxCondition[] = next.status?.conditions ?? [];
  const existing = conditions.find((c) => c.type === "Ready");
  const transitioned = !existing || existing.status !== status;
  const condition = create(SandboxConditionSchema, {
    type: "Ready",
    status,
    reason,
    message,
    lastTransitionTime: transitioned
      ? now.toISOString()
      : (existing?.lastTransitionTime ?? now.toISOString()),
  });
  if (!next.status) next.status = create(SandboxStatusSchema, { sandboxName: next.name });
  next.status.conditions = [...conditions.filter((c) => c.type !== "Ready"), condition];
  return next;
}

function unchanged(before: Sandbox, after: Sandbox): boolean {
  const a = before.status?.conditions.find((c) => c.type === "Ready");
  const b = after.status?.conditions.find((c) => c.type === "Ready");
  return (
    before.phase === after.phase &&
    a?.status === b?.status &&
    a?.reason === b?.reason &&
    a?.message === b?.message
  );
}
