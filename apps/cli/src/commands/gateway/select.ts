import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInvocation } from "../../program.js";
import { run as list } from "./list.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const name = invocation.args[0] as string | undefined;
  if (!name) return list(invocation);
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
