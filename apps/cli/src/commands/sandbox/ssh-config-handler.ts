import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { shellCommandLine } from "../../files/shell-quote.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";
import type { sandboxSshConfigCommand } from "./ssh-config.js";

/**
 * A Host block whose ProxyCommand asks for a fresh session on every connection (name mode), so it
 * keeps working across token expiry and gateway restarts.
 */
export async function run(input: CommandInput<typeof sandboxSshConfigCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
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
