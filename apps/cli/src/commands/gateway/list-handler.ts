import { localGatewayLayout, runningGatewayPid } from "@openshell/bootstrap";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import type { gatewayListCommand } from "./list.js";

export async function run(input: CommandInput<typeof gatewayListCommand>): Promise<number> {
  listGateways(CliContext.of(input), { namesOnly: input.options.names });
  return 0;
}

/** The gateway table (or JSON, or names only: what shell completion lists). */
export function listGateways(ctx: CliContext, { namesOnly }: { namesOnly: boolean }): void {
  const active = ctx.registry.active();
  const rows = ctx.registry.list().map((metadata) => {
    const pid =
      metadata.deployment === "process"
        ? runningGatewayPid(localGatewayLayout(ctx.paths, metadata.name))
        : undefined;
    return {
      name: metadata.name,
      active: metadata.name === active,
      endpoint: metadata.gateway_endpoint,
      deployment: metadata.deployment ?? "registered",
      running: metadata.deployment === "process" ? pid !== undefined : null,
    };
  });
  if (ctx.json) ctx.output.json(rows);
  else if (namesOnly) for (const row of rows) ctx.output.print(row.name);
  else if (rows.length === 0) ctx.output.note("No gateways yet. Start one with: openshell gateway start");
  else
    ctx.output.table(
      ["", "NAME", "ENDPOINT", "KIND", "STATE"],
      rows.map((row) => [
        row.active ? "*" : "",
        row.name,
        row.endpoint,
        row.deployment,
        row.running === null ? "-" : row.running ? "running" : "stopped",
      ]),
    );
}
