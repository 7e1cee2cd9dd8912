import { localGatewayLayout, noSuchGateway, runningGatewayPid, stopLocalGateway } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import { dockerGateway } from "../../gateway/load-docker-gateway.js";
import type { gatewayStopCommand } from "./stop.js";

export async function run(input: CommandInput<typeof gatewayStopCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const name = gatewayNameFor(ctx, input.options.name);
  const metadata = ctx.registry.read(name);
  if (metadata?.deployment === "docker") {
    const progress = ctx.output.progress(
      `Stopping gateway '${name}' (docker stop; sandboxes keep their disks)`,
    );
    const stopped = await (await dockerGateway()).stopDockerGateway(ctx.env, name);
    progress.done();
    ctx.output.success(
      stopped
        ? `Gateway '${name}' stopped. Start it again with: openshell gateway start${name === "openshell" ? "" : ` --name ${name}`}`
        : `Gateway '${name}' is not running.`,
    );
    return 0;
  }
  if (metadata && metadata.deployment !== "process")
    throw new OpenShellError(
      "failed_precondition",
      `gateway '${name}' runs elsewhere (${metadata.gateway_endpoint}); stop it where it runs`,
    );
  const layout = localGatewayLayout(ctx.paths, name);
  if (runningGatewayPid(layout) === undefined) {
    if (!metadata) throw noSuchGateway(name);
    ctx.output.success(`Gateway '${name}' is not running.`);
    return 0;
  }
  const progress = ctx.output.progress(
    `Stopping gateway '${name}' (sandboxes are powered off and keep their disks)`,
  );
  await stopLocalGateway(layout);
  progress.done();
  ctx.output.success(
    `Gateway '${name}' stopped. Start it again with: openshell gateway start${name === "openshell" ? "" : ` --name ${name}`}`,
  );
  return 0;
}
