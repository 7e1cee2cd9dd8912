import { CliContext } from "../../cli-context.js";
import type { CommandInvocation } from "../../program.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { runSshAttached, sessionProxyCommand, sshArgs, ttyArgs } from "../../ssh/sandbox-ssh.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const target = ctx.target();
  const name = ctx.sandboxName(invocation.args[0] as string | undefined, target);
  ctx.rememberSandbox(target, name);
  const proxy = await ctx.withGateway(async (client) => {
    const sandbox = await getReadySandbox(client, name);
    return sessionProxyCommand(ctx, client, target, sandbox);
  }, target);
  return runSshAttached(sshArgs(proxy, ttyArgs(true)));
}
