import { CliContext } from "../../cli-context.js";
import { uploadToSandbox } from "../../files/sandbox-transfer.js";
import type { CommandInvocation } from "../../program.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { sessionProxyCommand, sshRemoteRunner } from "../../ssh/sandbox-ssh.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const [name, local, dest] = invocation.args as [string, string, string];
  const target = ctx.target();
  ctx.rememberSandbox(target, name);
  const summary = await ctx.withGateway(async (client) => {
    const sandbox = await getReadySandbox(client, name);
    const proxy = await sessionProxyCommand(ctx, client, target, sandbox);
    const progress = ctx.output.progress(`Uploading ${local} to ${name}:${dest}`);
    try {
      return await uploadToSandbox({
        localPath: local,
        dest,
        gitIgnore: invocation.options.gitIgnore !== false,
        runRemote: sshRemoteRunner(proxy),
      });
    } finally {
      progress.done();
    }
  }, target);
  ctx.output.success(`Uploaded ${summary.files} files (${summary.bytes} bytes) to ${name}:${dest}`);
  return 0;
}
