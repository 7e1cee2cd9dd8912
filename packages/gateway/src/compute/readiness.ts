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
export const READY_MESSAGE = "Supervisor session connected";
export const NOT_READY_REASON = "DependenciesNotReady";
export const NOT_READY_MESSAGE = "Supervisor session disconnected";

const TERMINAL = new Set([SandboxPhase.DELETING, SandboxPhase.ERROR]);

export function promoteOnSessionConnected(sandbox: Sandbox, now = new Date()): Sandbox | undefined {
  if (TERMINAL.has(sandbox.phase)) return undefined;
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
 * sandbox. When a session is live and the driver-derived phase is PROVISIONING or UNKNOWN, force READY.
 */
export function keepReadyWhileSessionLive(sandbox: Sandbox, sessionLive: boolean, now = new Date()): Sandbox {
  if (!sessionLive) return sandbox;
  if (sandbox.phase !== SandboxPhase.PROVISIONING && sandbox.phase !== SandboxPhase.UNKNOWN) return sandbox;
  const next = withReadyCondition(sandbox, "True", READY_REASON, READY_MESSAGE, now);
  next.phase = SandboxPhase.READY;
  return next;
}

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
