import { Code, ConnectError } from "@connectrpc/connect";
import type { OpenShellClient } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { type Sandbox, SandboxPhase } from "@openshell/proto";
import { phaseName, readyDetail } from "./sandbox-view.js";

/** GetSandbox with a not-found message that says where to look. */
export async function getSandbox(client: OpenShellClient, name: string): Promise<Sandbox> {
  try {
    const response = await client.getSandbox({ name });
    if (!response.sandbox) throw new OpenShellError("internal", `gateway returned no sandbox for '${name}'`);
    return response.sandbox;
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.NotFound)
      throw new OpenShellError("not_found", `sandbox '${name}' not found (see: openshell sandbox list)`, {
        cause: error,
      });
    throw error;
  }
}

/** Upstream's message for a sandbox that cannot take commands yet; a stopped one says how to start it. */
function assertReady(sandbox: Sandbox): void {
  if (sandbox.phase === SandboxPhase.READY) return;
  if (sandbox.phase === SandboxPhase.STOPPED || sandbox.phase === SandboxPhase.STOPPING)
    throw new OpenShellError(
      "failed_precondition",
      `sandbox ${sandbox.name} is ${sandbox.phase === SandboxPhase.STOPPED ? "stopped" : "stopping"}; start it with: openshell sandbox start ${sandbox.name}`,
    );
  const detail = readyDetail(sandbox);
  throw new OpenShellError(
    "failed_precondition",
    `sandbox '${sandbox.name}' is not ready (phase: ${phaseName(sandbox.phase)}${detail ? `, ${detail}` : ""}); wait for it to reach Ready state`,
  );
}

export async function getReadySandbox(client: OpenShellClient, name: string): Promise<Sandbox> {
  const sandbox = await getSandbox(client, name);
  assertReady(sandbox);
  return sandbox;
}
