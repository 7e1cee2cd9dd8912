import { CliContext } from "../../cli-context.js";
import { listForwards } from "../../forward/forward-registry.js";
import type { CommandInvocation } from "../../program.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
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
