import { describe, expect, it } from "vitest";
import { type ContainerObservation, type SandboxCondition, toDriverSandbox } from "./sandbox-status.js";

const container = (state: string, extra: Partial<ContainerObservation> = {}): ContainerObservation => ({
  id: "0123456789abcdef0123",
  sandboxId: "id-1",
  sandboxName: "box",
  state,
  ...extra,
});

function ready(condition: SandboxCondition) {
  const sandbox = toDriverSandbox("id-1", "box", condition, false);
  const found = sandbox.status?.conditions.find((c) => c.type === "Ready");
  return {
    status: found?.status,
    reason: found?.reason,
    message: found?.message,
    instance: sandbox.status?.instanceId,
  };
}

describe("toDriverSandbox", () => {
  it("a running container waits for its supervisor (READY is the gateway's)", () => {
    expect(ready({ kind: "container", container: container("running"), wantedStopped: false })).toMatchObject(
      {
        status: "False",
        reason: "DependenciesNotReady",
        instance: "0123456789ab",
      },
    );
  });

  it("an exited container is Stopped when StopSandbox stopped it, else ContainerExited with its exit code", () => {
    expect(
      ready({ kind: "container", container: container("exited", { exitCode: 0 }), wantedStopped: true })
        .reason,
    ).toBe("Stopped");
    const crashed = ready({
      kind: "container",
      container: container("exited", { exitCode: 137, oomKilled: true }),
      wantedStopped: false,
    });
    expect(crashed.reason).toBe("ContainerExited");
    expect(crashed.message).toBe(
      "the container exited with code 137; killed for exceeding its memory limit; StartSandbox starts it again",
    );
  });

  it("a supervisor that failed closed (exit 78) is SupervisorFailedClosed, not a crash to retry", () => {
    expect(
      ready({ kind: "container", container: container("exited", { exitCode: 78 }), wantedStopped: false })
        .reason,
    ).toBe("SupervisorFailedClosed");
  });

  it("created and restarting are Starting; provisioning and failures carry their own reason", () => {
    expect(
      ready({ kind: "container", container: container("restarting"), wantedStopped: false }).reason,
    ).toBe("Starting");
    expect(ready({ kind: "provisioning", message: "importing" })).toMatchObject({
      reason: "Starting",
      message: "importing",
    });
    expect(ready({ kind: "failed", reason: "CreateFailed", message: "no image" })).toMatchObject({
      reason: "CreateFailed",
      message: "no image",
    });
    expect(toDriverSandbox("id-1", "box", { kind: "provisioning", message: "" }, true).status?.deleting).toBe(
      true,
    );
  });
});
