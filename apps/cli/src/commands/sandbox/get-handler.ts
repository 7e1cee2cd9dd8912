import type { GatewayTarget } from "@openshell/bootstrap";
import { policyToDocument, policyToYaml } from "@openshell/policy";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { policySourceName } from "../../policy/policy-view.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";
import { age, phaseName, readyDetail, sandboxJson } from "../../sandbox/sandbox-view.js";
import { terminalSafe } from "../../ui/terminal-safe.js";
import type { sandboxGetCommand } from "./get.js";

export async function run(input: CommandInput<typeof sandboxGetCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
  if (input.options.policyOnly) return printEffectivePolicy(ctx, name, target);
  const sandbox = await ctx.withGateway((client) => getSandbox(client, name), target);
  if (ctx.json) {
    ctx.output.json(sandboxJson(sandbox));
    return 0;
  }
  const { output } = ctx;
  const rows: [string, string][] = [
    ["Name", sandbox.name],
    ["Id", sandbox.id],
    ["Phase", phaseName(sandbox.phase)],
    ["Created", `${new Date(Number(sandbox.createdAtMs)).toISOString()} (${age(sandbox.createdAtMs)} ago)`],
  ];
  const detail = readyDetail(sandbox);
  if (detail) rows.push(["Detail", detail]);
  const env = Object.keys(sandbox.spec?.environment ?? {});
  if (env.length > 0) rows.push(["Environment", env.sort().join(", ")]);
  for (const condition of sandbox.status?.conditions ?? [])
    rows.push([
      `Condition ${condition.type}`,
      `${condition.status}${condition.reason ? ` (${condition.reason})` : ""}`,
    ]);
  // Names, conditions and details come from the gateway and, through the driver, the sandbox.
  for (const [key, value] of rows)
    output.print(`${terminalSafe(`${key}:`).padEnd(18)} ${terminalSafe(value)}`);
  return 0;
}

/**
 * `sandbox get NAME --policy-only`: the policy in force for the sandbox as its supervisor gets it
 * (GetSandboxConfig: the latest revision, or the global policy when one is set), as YAML.
 */
async function printEffectivePolicy(ctx: CliContext, name: string, target: GatewayTarget): Promise<number> {
  const config = await ctx.withGateway(async (client) => {
    const sandbox = await getSandbox(client, name);
    return client.getSandboxConfig({ sandboxId: sandbox.id }).catch((error: unknown) => {
      throw explainPolicyError(error, { sandbox: name });
    });
  }, target);
  if (ctx.json) {
    ctx.output.json({
      sandbox: name,
      version: config.version,
      policy_hash: config.policyHash,
      policy_source: policySourceName(config.policySource),
      policy: config.policy ? policyToDocument(config.policy) : null,
    });
    return 0;
  }
  if (!config.policy) {
    ctx.output.note(
      `Sandbox '${name}' has no policy yet: its supervisor discovers one when it starts (see: openshell policy list ${name})`,
    );
    return 0;
  }
  // The policy may be the one the sandbox discovered and synced back: its text is printed terminal-safe.
  ctx.output.print(terminalSafe(policyToYaml(config.policy).trimEnd(), { multiline: true }));
  return 0;
}
