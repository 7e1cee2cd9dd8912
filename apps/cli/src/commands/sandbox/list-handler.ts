import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { age, phaseName, readyDetail, sandboxJson } from "../../sandbox/sandbox-view.js";
import { terminalSafe } from "../../ui/terminal-safe.js";
import type { sandboxListCommand } from "./list.js";

export async function run(input: CommandInput<typeof sandboxListCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const options = input.options;
  const { sandboxes } = await ctx.withGateway((client) =>
    client.listSandboxes({ limit: options.limit, offset: options.offset }),
  );
  const { output } = ctx;
  if (ctx.json) output.json(sandboxes.map(sandboxJson));
  else if (options.names) for (const sandbox of sandboxes) output.print(terminalSafe(sandbox.name));
  else if (options.ids) for (const sandbox of sandboxes) output.print(terminalSafe(sandbox.id));
  else if (sandboxes.length === 0) output.note("No sandboxes. Create one with: openshell sandbox create");
  else
    output.table(
      ["NAME", "PHASE", "AGE", "ID", "DETAIL"],
      sandboxes.map((sandbox) => [
        sandbox.name,
        phaseName(sandbox.phase),
        age(sandbox.createdAtMs),
        sandbox.id,
        sandbox.phase === 2 ? "" : (readyDetail(sandbox) ?? ""),
      ]),
    );
  return 0;
}
