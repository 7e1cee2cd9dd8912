import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import type { RefusedEntry } from "../../files/safe-extract.js";
import { downloadFromSandbox } from "../../files/sandbox-transfer.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { sessionProxyCommand, sshRemoteRunner } from "../../ssh/sandbox-ssh.js";
import { terminalSafe } from "../../ui/terminal-safe.js";
import type { sandboxDownloadCommand } from "./download.js";

export async function run(input: CommandInput<typeof sandboxDownloadCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { name, path, dest } = input.args;
  const target = ctx.target();
  ctx.rememberSandbox(target, name);
  const summary = await ctx.withGateway(async (client) => {
    const sandbox = await getReadySandbox(client, name);
    const proxy = await sessionProxyCommand(ctx, client, target, sandbox);
    const progress = ctx.output.progress(`Downloading ${name}:${path} to ${dest}`);
    const refusedEntries: RefusedEntry[] = [];
    try {
      return await downloadFromSandbox({
        sandboxPath: path,
        dest,
        runRemote: sshRemoteRunner(proxy),
        onRefused: (refused) => refusedEntries.push(refused),
      });
    } finally {
      progress.done();
      // After the spinner is gone, before the error that counts them. Names come from the sandbox.
      for (const refused of refusedEntries)
        ctx.output.warn(`skipped '${terminalSafe(refused.path)}': ${terminalSafe(refused.reason)}`);
    }
  }, target);
  ctx.output.success(`Downloaded ${name}:${path} to ${dest} (${summary.bytes} bytes)`);
  return 0;
}
