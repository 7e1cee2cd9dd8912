import { OpenShellError } from "@openshell/core";
import type Docker from "dockerode";
import { LABEL_MANAGED_BY, MANAGED_BY } from "./container-spec.js";
import { dockerMessage, dockerStatus } from "./docker-connection.js";

/**
 * The user-defined bridge network every sandbox container joins (created once, kept: containers
 * of a stopped gateway still use it), and the host's address on it, which containers reach as
 * host.openshell.internal. A user-defined bridge rather than Docker's default one: it exists on
 * daemons started with `--bridge none`, and its gateway address is known before any container runs.
 */
export async function ensureSandboxNetwork(docker: Docker, name: string): Promise<string> {
  let info: Docker.NetworkInspectInfo;
  try {
    info = await docker.getNetwork(name).inspect();
  } catch (error) {
    if (dockerStatus(error) !== 404)
      throw new OpenShellError("unavailable", `inspecting network ${name}: ${dockerMessage(error)}`);
    try {
      await docker.createNetwork({
        Name: name,
        Driver: "bridge",
        Labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
      });
    } catch (createError) {
      // Another driver made it meanwhile: fine. Anything else is the daemon's refusal.
      if (dockerStatus(createError) !== 409) {
        throw new OpenShellError(
          "unavailable",
          `creating the sandbox network ${name}: ${dockerMessage(createError)}`,
        );
      }
    }
    info = await docker.getNetwork(name).inspect();
  }
  if (info.Driver !== "bridge") {
    throw new OpenShellError(
      "failed_precondition",
      `Docker network ${name} uses the ${info.Driver} driver; the sandbox network must be a bridge (remove it, or choose another with --network)`,
    );
  }
  const gateway = info.IPAM?.Config?.find((c) => c.Gateway && !c.Gateway.includes(":"))?.Gateway;
  if (!gateway) {
    throw new OpenShellError("failed_precondition", `Docker network ${name} has no IPv4 gateway address`);
  }
  return gateway;
}
