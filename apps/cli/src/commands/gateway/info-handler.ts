import { localGatewayLayout, runningGatewayPid } from "@openshell/bootstrap";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import type { gatewayInfoCommand } from "./info.js";

export async function run(input: CommandInput<typeof gatewayInfoCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const name = gatewayNameFor(ctx, input.options.name);
  const metadata = ctx.registry.require(name);
  const layout = metadata.deployment === "process" ? localGatewayLayout(ctx.paths, name) : undefined;
  const info = {
    ...metadata,
    active: ctx.registry.active() === name,
    config_dir: ctx.registry.gatewayDir(name),
    ...(layout
      ? { state_dir: layout.stateDir, log_file: layout.logFile, pid: runningGatewayPid(layout) ?? null }
      : {}),
  };
  if (ctx.json) ctx.output.json(info);
  else
    for (const [key, value] of Object.entries(info))
      ctx.output.print(`${`${key}:`.padEnd(18)} ${value ?? "-"}`);
  return 0;
}
