import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";
import { age, phaseName, readyDetail, sandboxJson } from "../../sandbox/sandbox-view.js";
import { terminalSafe } from "../../ui/terminal-safe.js";
import type { sandboxGetCommand } from "./get.js";

export async function run(input: CommandInput<typeof sandboxGetCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
  const sandbox = await ctx.withGateway((client) => getSandbox(client, name), target);
  if (ctx.json) {
    ctx.output.json(sandboxJson(sandbox));
    return 0;
  }
  const { output } = ctx;
  const rows: [string, string][] = [
    ["Name", sandbox.name],
    ["Id", sandbox.id],
    ["Phase", phaseName(sandbox.phase)],
    ["Created", `${new Date(Number(sandbox.createdAtMs)).toISOString()} (${age(sandbox.createdAtMs)} ago)`],
  ];
  const detail = readyDetail(sandbox);
  if (detail) rows.push(["Detail", detail]);
  const env = Object.keys(sandbox.spec?.environment ?? {});
  if (env.length > 0) rows.push(["Environment", env.sort().join(", ")]);
  for (const condition of sandbox.status?.conditions ?? [])
    rows.push([
      `Condition ${condition.type}`,
      `${condition.status}${condition.reason ? ` (${condition.reason})` : ""}`,
    ]);
  // Names, conditions and details come from the gateway and, through the driver, the sandbox.
  for (const [key, value] of rows)
    output.print(`${terminalSafe(`${key}:`).padEnd(18)} ${terminalSafe(value)}`);
  return 0;
}
