import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import { dockerGateway } from "../../gateway/docker/load-docker-gateway.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import { localGatewayLayout, runningGatewayPid } from "../../gateway/local-gateway.js";
import { printStatus } from "../../gateway/status-report.js";
import type { CommandInvocation } from "../../program.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const name = gatewayNameFor(ctx, invocation.options.name);
  const metadata = ctx.registry.read(name);
  if (!metadata)
    throw new OpenShellError("not_found", `no gateway named '${name}' (see: openshell gateway list)`);
  const pid =
    metadata.deployment === "process" ? runningGatewayPid(localGatewayLayout(ctx.paths, name)) : undefined;
  const container =
    metadata.deployment === "docker"
      ? await (await dockerGateway()).dockerGatewayState(ctx, name)
      : undefined;
  return printStatus(
    ctx,
    {
      name,
      endpoint: new URL(metadata.gateway_endpoint),
      tls: ctx.registry.readClientTls(name),
      metadata,
    },
    { pid, container },
  );
}
