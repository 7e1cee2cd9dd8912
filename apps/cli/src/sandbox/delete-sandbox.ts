import { Code, ConnectError } from "@connectrpc/connect";
import type { OpenShellClient } from "@openshell/bootstrap";
import { OpenShellError, sleep } from "@openshell/core";

/** DeleteSandbox; with `wait`, returns once the gateway no longer knows the sandbox. */
export async function deleteSandbox(
  client: OpenShellClient,
  name: string,
  options: { wait: boolean; timeoutMs?: number },
): Promise<boolean> {
  const { deleted } = await client.deleteSandbox({ name });
  if (!deleted || !options.wait) return deleted;
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  while (Date.now() < deadline) {
    try {
      await client.getSandbox({ name });
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.NotFound) return true;
      throw error;
    }
    await sleep(200);
  }
  throw new OpenShellError(
    "deadline_exceeded",
    `sandbox '${name}' is still being deleted; check later with: openshell sandbox get ${name}`,
  );
}
