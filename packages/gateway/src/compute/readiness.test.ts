import { create } from "@bufbuild/protobuf";
import { compute, SandboxPhase, SandboxSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { sandboxFromSnapshot } from "./compute-runtime.js";
import {
  demoteOnSessionDisconnected,
  keepReadyWhileSessionLive,
  NOT_READY_REASON,
  promoteOnSessionConnected,
  READY_REASON,
  STOPPED_REASON,
  withPowerPhase,
} from "./readiness.js";

const sandbox = (phase: SandboxPhase) => create(SandboxSchema, { id: "id-1", name: "s1", phase });
const ready = (s: ReturnType<typeof sandbox>) => s.status?.conditions.find((c) => c.type === "Ready");

describe("gateway-owned readiness", () => {
  it("promotes PROVISIONING and UNKNOWN to READY with DependenciesReady", () => {
    for (const phase of [SandboxPhase.PROVISIONING, SandboxPhase.UNKNOWN]) {
      const next = promoteOnSessionConnected(sandbox(phase));
      expect(next?.phase).toBe(SandboxPhase.READY);
      expect(ready(next!)).toMatchObject({
        status: "True",
        reason: READY_REASON,
        message: "Supervisor session connected",
      });
    }
  });

  it("never overwrites DELETING or ERROR", () => {
    expect(promoteOnSessionConnected(sandbox(SandboxPhase.DELETING))).toBeUndefined();
    expect(promoteOnSessionConnected(sandbox(SandboxPhase.ERROR))).toBeUndefined();
    expect(demoteOnSessionDisconnected(sandbox(SandboxPhase.DELETING))).toBeUndefined();
    expect(demoteOnSessionDisconnected(sandbox(SandboxPhase.ERROR))).toBeUndefined();
  });

  it("a supervisor that connects to a stopping or stopped sandbox does not make it READY", () => {
    expect(promoteOnSessionConnected(sandbox(SandboxPhase.STOPPING))).toBeUndefined();
    expect(promoteOnSessionConnected(sandbox(SandboxPhase.STOPPED))).toBeUndefined();
  });

  it("a disconnecting supervisor leaves STOPPING, STOPPED and STARTING alone", () => {
    for (const phase of [SandboxPhase.STOPPING, SandboxPhase.STOPPED, SandboxPhase.STARTING])
      expect(demoteOnSessionDisconnected(sandbox(phase))).toBeUndefined();
  });

  it("a start ends READY when the supervisor connects", () => {
    const starting = withPowerPhase(sandbox(SandboxPhase.STOPPED), SandboxPhase.STARTING);
    expect(promoteOnSessionConnected(starting)?.phase).toBe(SandboxPhase.READY);
  });

  it("a stopped sandbox says how to start it", () => {
    const stopped = withPowerPhase(sandbox(SandboxPhase.STOPPING), SandboxPhase.STOPPED);
    expect(stopped.phase).toBe(SandboxPhase.STOPPED);
    expect(ready(stopped)).toMatchObject({ status: "False", reason: STOPPED_REASON });
    expect(ready(stopped)?.message).toContain("openshell sandbox start s1");
  });

  it("promoting an already READY sandbox is a no-op", () => {
    const once = promoteOnSessionConnected(sandbox(SandboxPhase.PROVISIONING))!;
    expect(promoteOnSessionConnected(once)).toBeUndefined();
  });

  it("demotes READY to PROVISIONING with DependenciesNotReady", () => {
    const next = demoteOnSessionDisconnected(promoteOnSessionConnected(sandbox(SandboxPhase.PROVISIONING))!);
    expect(next?.phase).toBe(SandboxPhase.PROVISIONING);
    expect(ready(next!)).toMatchObject({ status: "False", reason: NOT_READY_REASON });
    expect(demoteOnSessionDisconnected(sandbox(SandboxPhase.PROVISIONING))).toBeUndefined();
  });

  it("does not mutate its input", () => {
    const input = sandbox(SandboxPhase.PROVISIONING);
    promoteOnSessionConnected(input);
    expect(input.phase).toBe(SandboxPhase.PROVISIONING);
    expect(input.status).toBeUndefined();
  });
});

describe("the backfill race: a driver snapshot arriving after the session connected", () => {
  const starting = create(compute.DriverSandboxSchema, {
    id: "id-1",
    name: "s1",
    status: { conditions: [{ type: "Ready", status: "False", reason: "Starting" }] },
  });

  it("keeps READY while the session is live", () => {
    const promoted = promoteOnSessionConnected(sandbox(SandboxPhase.PROVISIONING))!;
    const applied = keepReadyWhileSessionLive(sandboxFromSnapshot(promoted, starting), true);
    expect(applied.phase).toBe(SandboxPhase.READY);
    expect(ready(applied)?.reason).toBe(READY_REASON);
  });

  it("follows the driver when no session is live", () => {
    const promoted = promoteOnSessionConnected(sandbox(SandboxPhase.PROVISIONING))!;
    const applied = keepReadyWhileSessionLive(sandboxFromSnapshot(promoted, starting), false);
    expect(applied.phase).toBe(SandboxPhase.PROVISIONING);
  });

  it("does not hide a driver-reported ERROR behind a live session", () => {
    const crashed = create(compute.DriverSandboxSchema, {
      id: "id-1",
      status: { conditions: [{ type: "Ready", status: "False", reason: "ProcessExited" }] },
    });
    const applied = keepReadyWhileSessionLive(
      sandboxFromSnapshot(sandbox(SandboxPhase.READY), crashed),
      true,
    );
    expect(applied.phase).toBe(SandboxPhase.ERROR);
  });

  it("a STARTING sandbox whose session is live is READY even if the driver still says Starting", () => {
    const starting = withPowerPhase(sandbox(SandboxPhase.STOPPED), SandboxPhase.STARTING);
    const snapshot = create(compute.DriverSandboxSchema, {
      id: "id-1",
      status: { conditions: [{ type: "Ready", status: "False", reason: "Starting" }] },
    });
    expect(sandboxFromSnapshot(starting, snapshot).phase).toBe(SandboxPhase.STARTING);
    expect(keepReadyWhileSessionLive(sandboxFromSnapshot(starting, snapshot), true).phase).toBe(
      SandboxPhase.READY,
    );
  });

  it("a STOPPED sandbox stays STOPPED when the driver reports the powered-off VM", () => {
    const stopped = withPowerPhase(sandbox(SandboxPhase.STOPPING), SandboxPhase.STOPPED);
    const exited = create(compute.DriverSandboxSchema, {
      id: "id-1",
      status: { conditions: [{ type: "Ready", status: "False", reason: "ProcessExited" }] },
    });
    expect(keepReadyWhileSessionLive(sandboxFromSnapshot(stopped, exited), true).phase).toBe(
      SandboxPhase.STOPPED,
    );
  });

  it("a DELETING sandbox stays DELETING whatever the snapshot says", () => {
    const applied = sandboxFromSnapshot(sandbox(SandboxPhase.DELETING), starting);
    expect(applied.phase).toBe(SandboxPhase.DELETING);
  });
});
