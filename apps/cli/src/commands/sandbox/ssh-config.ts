import { CliContext } from "../../cli-context.js";
import { shellCommandLine } from "../../files/shell-quote.js";
import type { CommandInvocation } from "../../program.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";

/**
 * A Host block whose ProxyCommand asks for a fresh session on every connection (name mode), so it
 * keeps working across token expiry and gateway restarts.
 */
export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const target = ctx.target();
  const name = ctx.sandboxName(invocation.args[0] as string | undefined, target);
  await ctx.withGateway((client) => getSandbox(client, name), target);
  const proxy = shellCommandLine([
    ...ctx.selfCommand(),
    "ssh-proxy",
    ...(target.name ? ["--gateway-name", target.name] : ["--gateway-endpoint", target.endpoint.origin]),
    "--name",
    name,
  ]);
  ctx.output.print(
    [
      `Host openshell-${name}`,
      "    User sandbox",
      "    StrictHostKeyChecking no",
      "    UserKnownHostsFile /dev/null",
      "    GlobalKnownHostsFile /dev/null",
      "    LogLevel ERROR",
      "    ServerAliveInterval 15",
      "    ServerAliveCountMax 3",
      `    ProxyCommand ${proxy}`,
    ].join("\n"),
  );
  return 0;
}
