import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { uploadToSandbox } from "../../files/sandbox-transfer.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { sessionProxyCommand, sshRemoteRunner } from "../../ssh/sandbox-ssh.js";
import type { sandboxUploadCommand } from "./upload.js";

export async function run(input: CommandInput<typeof sandboxUploadCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { name, local, dest } = input.args;
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
        gitIgnore: input.options.gitIgnore,
        runRemote: sshRemoteRunner(proxy),
      });
    } finally {
      progress.done();
    }
  }, target);
  ctx.output.success(`Uploaded ${summary.files} files (${summary.bytes} bytes) to ${name}:${dest}`);
  return 0;
}
