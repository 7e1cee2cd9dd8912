import { OpenShellError } from "@openshell/core";
import { SandboxPhase } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { phaseName, sandboxJson } from "../../sandbox/sandbox-view.js";
import { provisionTimeoutMs, waitForReady } from "../../sandbox/wait-for-ready.js";
import type { sandboxForkCommand } from "./fork.js";

/**
 * `sandbox fork NAME [--name NEW]`: ForkSandbox, then (unless --no-wait) follow the copy to READY
 * like create; prints the new sandbox's name (or, with -o json, the sandbox).
 */
export async function run(input: CommandInput<typeof sandboxForkCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const source = input.args.name;
  const newName = input.options.name;
  if (newName !== undefined && newName.trim() === "")
    throw new OpenShellError(
      "invalid_argument",
      "--name must not be empty: give a name, or leave --name out to get a generated one",
    );
  const timeoutMs = provisionTimeoutMs(ctx.env);
  const target = ctx.target();
  const sandbox = await ctx.withGateway(async (client) => {
    const progress = ctx.output.progress(`Forking sandbox '${source}'`);
    let forked: Awaited<ReturnType<typeof client.forkSandbox>>["sandbox"];
    try {
      forked = (await client.forkSandbox({ name: source, newName: newName ?? "" })).sandbox;
    } finally {
      progress.done();
    }
    if (!forked)
      throw new OpenShellError("internal", `the gateway answered no sandbox for the fork of '${source}'`);
    ctx.output.note(`Forked sandbox '${source}' into: ${forked.name}`);
    ctx.rememberSandbox(target, forked.name);
    if (!input.options.wait) {
      ctx.output.success(`Sandbox '${forked.name}' is ${phaseName(forked.phase).toLowerCase()}`);
      return forked;
    }
    if (forked.phase === SandboxPhase.READY) return forked;
    return waitForReady({ client, sandbox: forked, output: ctx.output, timeoutMs, verbose: ctx.verbose > 0 });
  }, target);
  if (ctx.json) ctx.output.json(sandboxJson(sandbox));
  else ctx.output.print(sandbox.name);
  return 0;
}
