import { DEFAULT_GATEWAY_NAME, ensureLocalGateway, validateGatewayName } from "@openshell/bootstrap";
import { CliContext } from "../../cli-context.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import { dockerGateway } from "../../gateway/load-docker-gateway.js";
import type { CommandInvocation } from "../../program.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const options = invocation.options;
  const name = validateGatewayName(startName(ctx, options.name as string | undefined));
  const docker = Boolean(options.docker) || ctx.registry.read(name)?.deployment === "docker";
  const { target, alreadyRunning } = docker
    ? await (await dockerGateway()).ensureDockerGateway(ctx.bootstrapInputs(), {
        name,
        port: options.port as number | undefined,
        recreate: options.recreate as boolean | undefined,
      })
    : await ensureLocalGateway(ctx.bootstrapInputs(), {
        name,
        port: options.port as number | undefined,
        driver: options.drivers as string | undefined,
        plaintext: options.plaintext as boolean | undefined,
        recreate: options.recreate as boolean | undefined,
        vmVcpus: options.vmVcpus as number | undefined,
        vmMemMib: options.vmMemMib as number | undefined,
      });
  if (alreadyRunning)
    ctx.output.success(`Gateway '${name}' is already running at ${target.endpoint.origin}.`);
  else ctx.output.success(`Gateway '${name}' is running at ${target.endpoint.origin}`);
  ctx.output.success(`Active gateway set to '${name}'`);
  return 0;
}

/** --name, else -g / OPENSHELL_GATEWAY / the active gateway when this CLI manages it, else 'openshell'. */
function startName(ctx: CliContext, explicit: string | undefined): string {
  if (explicit) return explicit;
  const chosen = gatewayNameFor(ctx, undefined);
  const deployment = ctx.registry.read(chosen)?.deployment;
  return deployment === "registered" ? DEFAULT_GATEWAY_NAME : chosen;
}
