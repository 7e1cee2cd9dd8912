import { gatewayTargetOf, localGatewayLayout, runningGatewayPid } from "@openshell/bootstrap";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import { dockerGateway } from "../../gateway/load-docker-gateway.js";
import { printStatus } from "../../gateway/status-report.js";
import type { gatewayStatusCommand } from "./status.js";

export async function run(input: CommandInput<typeof gatewayStatusCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const name = gatewayNameFor(ctx, input.options.name);
  const metadata = ctx.registry.require(name);
  const pid =
    metadata.deployment === "process" ? runningGatewayPid(localGatewayLayout(ctx.paths, name)) : undefined;
  const container =
    metadata.deployment === "docker"
      ? await (await dockerGateway()).dockerGatewayState(ctx.env, name)
      : undefined;
  return printStatus(ctx, gatewayTargetOf(ctx.registry, metadata), { pid, container });
}
