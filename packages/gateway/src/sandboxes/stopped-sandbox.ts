import { OpenShellError } from "@openshell/core";
import { type Sandbox, SandboxPhase } from "@openshell/proto";

/** What exec and SSH answer for a sandbox the user stopped (or is stopping); undefined otherwise. */
export function stoppedSandboxError(sandbox: Sandbox): OpenShellError | undefined {
  if (sandbox.phase === SandboxPhase.STOPPED)
    return new OpenShellError(
      "failed_precondition",
      `sandbox ${sandbox.name} is stopped; start it with: openshell sandbox start ${sandbox.name}`,
    );
  if (sandbox.phase === SandboxPhase.STOPPING)
    return new OpenShellError(
      "failed_precondition",
      `sandbox ${sandbox.name} is stopping; start it again with: openshell sandbox start ${sandbox.name}`,
    );
  return undefined;
}
