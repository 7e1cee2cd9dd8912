import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { listForwards, stopForward } from "../../forward/forward-registry.js";
import type { forwardStopCommand } from "./stop.js";

export async function run(input: CommandInput<typeof forwardStopCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { port: portText, name: sandbox } = input.args;
  const port = Number(portText);
  const matches = listForwards(ctx.paths).filter(
    (f) => f.port === port && (!sandbox || f.sandbox === sandbox),
  );
  if (matches.length === 0)
    throw new OpenShellError(
      "not_found",
      `no background forward on port ${portText}${sandbox ? ` for sandbox '${sandbox}'` : ""} (see: openshell forward list)`,
    );
  for (const forward of matches) {
    stopForward(ctx.paths, forward);
    ctx.output.success(`Stopped forwarding ${forward.bind}:${forward.port} → ${forward.sandbox}`);
  }
  return 0;
}
