import { existsSync, rmSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import { localGatewayLayout, noSuchGateway, runningGatewayPid, stopLocalGateway } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { gatewayNameFor } from "../../gateway/gateway-name.js";
import { dockerGateway } from "../../gateway/load-docker-gateway.js";
import type { gatewayDestroyCommand } from "./destroy.js";

async function confirm(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

export async function run(input: CommandInput<typeof gatewayDestroyCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const name = gatewayNameFor(ctx, input.options.name);
  const metadata = ctx.registry.read(name);
  const layout = localGatewayLayout(ctx.paths, name);
  const docker = metadata?.deployment === "docker";
  const local = docker || metadata?.deployment === "process" || (!metadata && existsSync(layout.stateDir));
  if (!metadata && !local) throw noSuchGateway(name);

  if (local && !input.options.yes) {
    if (!process.stdin.isTTY)
      throw new OpenShellError(
        "failed_precondition",
        `destroying gateway '${name}' deletes all its sandboxes and their files; pass --yes to confirm`,
      );
    if (!(await confirm(`Destroy gateway '${name}' with all its sandboxes and their files? [y/N] `))) {
      ctx.output.note("Nothing was changed.");
      return 1;
    }
  }
  if (docker) {
    const progress = ctx.output.progress(`Removing gateway '${name}': container, network and volume`);
    await (await dockerGateway()).destroyDockerGateway(ctx.env, name);
    progress.done();
  } else if (local) {
    if (runningGatewayPid(layout) !== undefined) {
      const progress = ctx.output.progress(`Stopping gateway '${name}'`);
      await stopLocalGateway(layout);
      progress.done();
    }
    rmSync(layout.stateDir, { recursive: true, force: true });
  }
  ctx.registry.remove(name);
  ctx.output.success(
    local ? `Gateway '${name}' destroyed` : `Gateway '${name}' forgotten (it keeps running where it is)`,
  );
  return 0;
}
