import { CliContext } from "../cli-context.js";
import type { CommandInput } from "../command-spec/program-spec.js";
import { printStatus } from "../gateway/status-report.js";
import type { statusCommand } from "./status.js";

export async function run(input: CommandInput<typeof statusCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.optionalTarget();
  if (!target) {
    if (ctx.json) ctx.output.json({ gateway: null, status: "No gateway configured" });
    else
      ctx.output.print(
        "No gateway configured yet.\nStart a local one with:   openshell gateway start\nOr register one with:     openshell gateway add <url>\n(openshell sandbox create also starts one when none is configured.)",
      );
    return 0;
  }
  return printStatus(ctx, target);
}
