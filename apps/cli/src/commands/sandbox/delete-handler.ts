import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { stopForwardsOf } from "../../forward/forward-registry.js";
import { deleteSandbox } from "../../sandbox/delete-sandbox.js";
import type { sandboxDeleteCommand } from "./delete.js";

export async function run(input: CommandInput<typeof sandboxDeleteCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const names = input.args.names;
  const all = input.options.all;
  if (all && names.length > 0)
    throw new OpenShellError("invalid_argument", "give sandbox names or --all, not both");
  if (!all && names.length === 0)
    throw new OpenShellError(
      "invalid_argument",
      "which sandbox? give one or more names, or --all (see: openshell sandbox list)",
    );
  const wait = input.options.wait;
  let missing = 0;
  await ctx.withGateway(async (client) => {
    const toDelete = all
      ? (await client.listSandboxes({ limit: 10_000 })).sandboxes.map((s) => s.name)
      : names;
    if (all && toDelete.length === 0) ctx.output.note("No sandboxes to delete.");
    for (const name of toDelete) {
      const progress = ctx.output.progress(`Deleting sandbox '${name}'`);
      const deleted = await deleteSandbox(client, name, { wait });
      progress.done();
      if (!deleted) {
        missing += 1;
        ctx.output.error(`sandbox '${name}' not found (see: openshell sandbox list)`);
        continue;
      }
      stopForwardsOf(ctx.paths, name);
      if (target.name) ctx.registry.clearLastSandbox(target.name, name);
      ctx.output.success(`Deleted sandbox '${name}'`);
    }
  }, target);
  return missing > 0 ? 4 : 0;
}
