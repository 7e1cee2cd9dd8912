import { OpenShellError } from "@openshell/core";
import { SandboxPhase } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { phaseName, sandboxJson } from "../../sandbox/sandbox-view.js";
import { provisionTimeoutMs, waitForReady } from "../../sandbox/wait-for-ready.js";
import type { sandboxStartCommand } from "./start.js";

const EVENT_CLOCK_SLACK_MS = 5_000;

/** `sandbox start [NAME]`: StartSandbox, then (unless --no-wait) follow it to READY like create. */
export async function run(input: CommandInput<typeof sandboxStartCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
  const wait = input.options.wait;
  const timeoutMs = provisionTimeoutMs(ctx.env);
  // Events from before this start are an earlier run's; the slack allows for the clocks of the
  // gateway's host (or the cluster) and this one being a little apart.
  const eventsSinceMs = Date.now() - EVENT_CLOCK_SLACK_MS;
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
      eventsSinceMs,
    });
  }, target);
  if (ctx.json) ctx.output.json(sandboxJson(sandbox));
  return 0;
}
