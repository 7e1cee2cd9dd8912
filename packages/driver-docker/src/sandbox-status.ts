import { create } from "@bufbuild/protobuf";
import { SUPERVISOR_EXIT } from "@openshell/core";
import { setReadyCondition } from "@openshell/driver-sdk";
import { compute } from "@openshell/proto";

export const EVENT_SOURCE = "docker";

/** What the driver knows of one sandbox's container (from a list entry or an inspect). */
export interface ContainerObservation {
  id: string;
  sandboxId: string;
  sandboxName: string;
  /** Docker's state: created, running, restarting, paused, exited, dead, removing. */
  state: string;
  exitCode?: number;
  oomKilled?: boolean;
  error?: string;
}

export type SandboxCondition =
  | { kind: "container"; container: ContainerObservation; wantedStopped: boolean }
  | { kind: "provisioning"; message: string }
  | { kind: "failed"; reason: string; message: string };

/**
 * A sandbox's status for the gateway. Readiness is the gateway's (its supervisor session), so a
 * running container is Ready=False DependenciesNotReady; a container stopped by StopSandbox is
 * Stopped; one that exited on its own is ContainerExited (ERROR) until Start or Docker's restart
 * policy brings it back; a create that failed is CreateFailed with the reason.
 */
export function toDriverSandbox(
  id: string,
  name: string,
  condition: SandboxCondition,
  deleting: boolean,
): compute.DriverSandbox {
  const sandbox = create(compute.DriverSandboxSchema, {
    id,
    name,
    status: {
      sandboxName: name,
      instanceId: condition.kind === "container" ? condition.container.id.slice(0, 12) : "",
      deleting,
    },
  });
  const [reason, message] = readyReason(condition);
  setReadyCondition(sandbox, "False", reason, message);
  return sandbox;
}

function readyReason(condition: SandboxCondition): [string, string] {
  switch (condition.kind) {
    case "provisioning":
      return ["Starting", condition.message];
    case "failed":
      return [condition.reason, condition.message];
    case "container": {
      const { container, wantedStopped } = condition;
      switch (container.state) {
        case "running":
          return [
            "DependenciesNotReady",
            "the container is running; waiting for its supervisor to connect to the gateway",
          ];
        case "created":
        case "restarting":
          return ["Starting", `the container is ${container.state}`];
        case "paused":
          return ["ContainerPaused", "the container is paused (docker unpause resumes it)"];
        default:
          if (wantedStopped) return ["Stopped", "the container is stopped; its workspace volume is kept"];
          if (container.exitCode === SUPERVISOR_EXIT.failedClosed) {
            return [
              "SupervisorFailedClosed",
              `the supervisor could not set the sandbox up and failed closed (exit ${SUPERVISOR_EXIT.failedClosed}); its reason is in the ContainerExited event; the container is not restarted`,
            ];
          }
          return ["ContainerExited", exitMessage(container)];
      }
    }
  }
}

export function exitMessage(
  container: Pick<ContainerObservation, "exitCode" | "oomKilled" | "error">,
): string {
  const parts = [
    `the container exited${container.exitCode !== undefined ? ` with code ${container.exitCode}` : ""}`,
  ];
  if (container.oomKilled) parts.push("killed for exceeding its memory limit");
  if (container.error) parts.push(container.error);
  return `${parts.join("; ")}; StartSandbox starts it again`;
}
