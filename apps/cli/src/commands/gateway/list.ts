import { localGatewayLayout, runningGatewayPid } from "@openshell/bootstrap";
import { CliContext } from "../../cli-context.js";
import type { CommandInvocation } from "../../program.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
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
  if (ctx.json) {
    ctx.output.json(rows);
    return 0;
  }
  if (rows.length === 0) {
    ctx.output.note("No gateways yet. Start one with: openshell gateway start");
    return 0;
  }
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
  return 0;
}
