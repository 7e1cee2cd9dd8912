import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { runSshAttached, sessionProxyCommand, sshArgs, ttyArgs } from "../../ssh/sandbox-ssh.js";
import type { sandboxConnectCommand } from "./connect.js";

export async function run(input: CommandInput<typeof sandboxConnectCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
  ctx.rememberSandbox(target, name);
  const proxy = await ctx.withGateway(async (client) => {
    const sandbox = await getReadySandbox(client, name);
    return sessionProxyCommand(ctx, client, target, sandbox);
  }, target);
  return runSshAttached(sshArgs(proxy, ttyArgs(true)));
}
