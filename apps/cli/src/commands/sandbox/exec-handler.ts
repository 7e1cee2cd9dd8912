import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { shellCommandLine } from "../../files/shell-quote.js";
import { parseEnvAssignments } from "../../sandbox/create-inputs.js";
import { wantsTty } from "../../sandbox/remote-command.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { runSshAttached, sessionProxyCommand, sshArgs, ttyArgs } from "../../ssh/sandbox-ssh.js";
import type { sandboxExecCommand } from "./exec.js";

/** Upstream's MAX_STDIN_PAYLOAD: ExecSandbox carries stdin in the request. */
const MAX_STDIN_BYTES = 4 * 1024 * 1024;

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Buffer).length;
    if (total > MAX_STDIN_BYTES)
      throw new OpenShellError(
        "invalid_argument",
        "stdin is larger than 4 MiB; copy big inputs with: openshell sandbox upload NAME FILE",
      );
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function run(input: CommandInput<typeof sandboxExecCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const options = input.options;
  const command = input.trailing;
  if (command.length === 0)
    throw new OpenShellError(
      "invalid_argument",
      "give the command after --, e.g. openshell sandbox exec NAME -- ls -la",
    );
  const environment = parseEnvAssignments(options.env);
  const target = ctx.target();
  const name = ctx.sandboxName(options.name ?? input.args.name, target);
  ctx.rememberSandbox(target, name);

  return ctx.withGateway(async (client) => {
    const sandbox = await getReadySandbox(client, name);
    if (wantsTty(options.tty) && options.tty === true) {
      // An interactive terminal needs a live stdin: that is SSH's job, not a unary-stdin RPC.
      const proxy = await sessionProxyCommand(ctx, client, target, sandbox);
      const cd = options.workdir ? `cd ${shellCommandLine([options.workdir])} && ` : "";
      return runSshAttached(sshArgs(proxy, ttyArgs(true), `${cd}${shellCommandLine(command)}`));
    }
    const stdin = await readStdin();
    const abort = new AbortController();
    const interrupt = () => abort.abort();
    process.once("SIGINT", interrupt);
    let exitCode = 1;
    try {
      const stream = client.execSandbox(
        {
          sandboxId: sandbox.id,
          command,
          workdir: options.workdir ?? "",
          environment,
          timeoutSeconds: options.timeout,
          stdin,
        },
        { signal: abort.signal },
      );
      for await (const event of stream) {
        const payload = event.payload;
        if (payload.case === "stdout") process.stdout.write(payload.value.data);
        else if (payload.case === "stderr") process.stderr.write(payload.value.data);
        else if (payload.case === "exit") exitCode = payload.value.exitCode;
      }
    } catch (error) {
      if (abort.signal.aborted) return 130;
      throw error;
    } finally {
      process.off("SIGINT", interrupt);
    }
    return exitCode;
  }, target);
}
