import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { listForwards } from "../../forward/forward-registry.js";
import type { forwardListCommand } from "./list.js";

export async function run(input: CommandInput<typeof forwardListCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const forwards = listForwards(ctx.paths);
  if (ctx.json) ctx.output.json(forwards);
  else if (forwards.length === 0) ctx.output.note("No background forwards.");
  else
    ctx.output.table(
      ["SANDBOX", "LOCAL", "PID", "STATE"],
      forwards.map((f) => [f.sandbox, `${f.bind}:${f.port}`, String(f.pid), f.alive ? "running" : "dead"]),
    );
  return 0;
}
