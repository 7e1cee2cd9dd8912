import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { listGateways } from "./list-handler.js";
import type { gatewaySelectCommand } from "./select.js";

export async function run(input: CommandInput<typeof gatewaySelectCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { name } = input.args;
  if (!name) {
    listGateways(ctx, { namesOnly: false });
    return 0;
  }
  if (!ctx.registry.read(name)) {
    const known = ctx.registry.list().map((entry) => entry.name);
    throw new OpenShellError(
      "not_found",
      `Unknown gateway '${name}'.${known.length > 0 ? ` Known gateways: ${known.join(", ")}.` : " No gateways are registered yet: openshell gateway start"}`,
    );
  }
  ctx.registry.setActive(name);
  ctx.output.success(`Active gateway set to '${name}'`);
  return 0;
}
