import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { stopForwardsOf } from "../../forward/forward-registry.js";
import { sandboxJson } from "../../sandbox/sandbox-view.js";
import type { sandboxStopCommand } from "./stop.js";

/** `sandbox stop [NAME]`: StopSandbox answers once the sandbox is powered off (disk kept). */
export async function run(input: CommandInput<typeof sandboxStopCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
  ctx.rememberSandbox(target, name);
  const sandbox = await ctx.withGateway(async (client) => {
    const progress = ctx.output.progress(`Stopping sandbox '${name}'`);
    try {
      return (await client.stopSandbox({ name })).sandbox;
    } finally {
      progress.done();
    }
  }, target);
  if (!sandbox) throw new OpenShellError("internal", `the gateway answered no sandbox for '${name}'`);
  // Their SSH connections ended with the sandbox.
  stopForwardsOf(ctx.paths, name);
  if (ctx.json) ctx.output.json(sandboxJson(sandbox));
  else
    ctx.output.success(
      `Stopped sandbox '${name}' (disk kept; start it with: openshell sandbox start ${name})`,
    );
  return 0;
}
