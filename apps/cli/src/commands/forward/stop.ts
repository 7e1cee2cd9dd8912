import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import { listForwards, stopForward } from "../../forward/forward-registry.js";
import type { CommandInvocation } from "../../program.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const [portText, sandbox] = invocation.args as [string, string | undefined];
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
