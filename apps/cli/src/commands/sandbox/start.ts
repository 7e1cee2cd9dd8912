import { OpenShellError } from "@openshell/core";
import { SandboxPhase } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInvocation } from "../../program.js";
import { phaseName, sandboxJson } from "../../sandbox/sandbox-view.js";
import { provisionTimeoutMs, waitForReady } from "../../sandbox/wait-for-ready.js";

/** `sandbox start [NAME]`: StartSandbox, then (unless --no-wait) follow it to READY like create. */
export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const target = ctx.target();
  const name = ctx.sandboxName(invocation.args[0] as string | undefined, target);
  const wait = invocation.options.wait !== false;
  const timeoutMs = provisionTimeoutMs(ctx.env);
  ctx.rememberSandbox(target, name);
  const sandbox = await ctx.withGateway(async (client) => {
    const progress = ctx.output.progress(`Starting sandbox '${name}'`);
    let started: Awaited<ReturnType<typeof client.startSandbox>>["sandbox"];
    try {
      started = (await client.startSandbox({ name })).sandbox;
    } finally {
      progress.done();
    }
    if (!started) throw new OpenShellError("internal", `the gateway answered no sandbox for '${name}'`);
    if (!wait) {
      ctx.output.success(`Sandbox '${name}' is ${phaseName(started.phase).toLowerCase()}`);
      return started;
    }
    if (started.phase === SandboxPhase.READY) {
      ctx.output.success(`Sandbox '${name}' is ready`);
      return started;
    }
    return waitForReady({
      client,
      sandbox: started,
      output: ctx.output,
      timeoutMs,
      verbose: ctx.verbose > 0,
      activity: "Starting",
    });
  }, target);
  if (ctx.json) ctx.output.json(sandboxJson(sandbox));
  return 0;
}
