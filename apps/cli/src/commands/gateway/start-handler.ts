import { DEFAULT_GATEWAY_NAME, ensureLocalGateway, validateGatewayName } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import { dockerGateway } from "../../gateway/load-docker-gateway.js";
import type { gatewayStartCommand } from "./start.js";

export async function run(input: CommandInput<typeof gatewayStartCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const options = input.options;
  const name = validateGatewayName(startName(ctx, options.name));
  const docker = options.docker || ctx.registry.read(name)?.deployment === "docker";
  const { target, alreadyRunning } = docker
    ? await (await dockerGateway()).ensureDockerGateway(ctx.bootstrapInputs(), {
        name,
        port: options.port,
        recreate: options.recreate,
      })
    : await ensureLocalGateway(ctx.bootstrapInputs(), {
        name,
        port: options.port,
        driver: driverOf(options.driver, options.drivers),
        plaintext: options.plaintext,
        recreate: options.recreate,
        vmVcpus: options.vmVcpus,
        vmMemMib: options.vmMemMib,
        kvmProbe: async (kernel) =>
          (await import("@openshell/driver-vm/accelerator")).chooseAccelerator({
            qemuBinary: "qemu-system-x86_64",
            kernel,
            env: ctx.env,
          }),
      });
  if (alreadyRunning)
    ctx.output.success(`Gateway '${name}' is already running at ${target.endpoint.origin}.`);
  else ctx.output.success(`Gateway '${name}' is running at ${target.endpoint.origin}`);
  ctx.output.success(`Active gateway set to '${name}'`);
  return 0;
}

/** `--driver`, or its older spelling `--drivers` (one driver: the gateway runs one). */
function driverOf(driver: string | undefined, drivers: string | undefined): string | undefined {
  if (driver && drivers && driver !== drivers) {
    throw new OpenShellError(
      "invalid_argument",
      `--driver ${driver} and --drivers ${drivers} disagree; give one`,
    );
  }
  return driver ?? drivers;
}

/** --name, else -g / OPENSHELL_GATEWAY / the active gateway when this CLI manages it, else 'openshell'. */
function startName(ctx: CliContext, explicit: string | undefined): string {
  if (explicit) return explicit;
  const chosen = gatewayNameFor(ctx, undefined);
  const deployment = ctx.registry.read(chosen)?.deployment;
  return deployment === "registered" ? DEFAULT_GATEWAY_NAME : chosen;
}
