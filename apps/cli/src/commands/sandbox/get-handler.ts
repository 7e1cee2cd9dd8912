import type { GatewayTarget } from "@openshell/bootstrap";
import { policyToDocument, policyToYaml } from "@openshell/policy";
import { sandboxv1 } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";
import { age, phaseName, readyDetail, sandboxJson, storageSummary } from "../../sandbox/sandbox-view.js";
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
  const storage = storageSummary(sandbox);
  if (storage) rows.push(["Storage", storage]);
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
 * `sandbox get NAME --policy-only`: the policy in force for the sandbox, as YAML: the global policy
 * when one is set (GetSandboxConfig says so), else the version its supervisor has loaded
 * (`current_policy_version`), else, before it loaded any, the latest one (said on stderr).
 */
async function printEffectivePolicy(ctx: CliContext, name: string, target: GatewayTarget): Promise<number> {
  const effective = await ctx.withGateway(async (client) => {
    const sandbox = await getSandbox(client, name);
    const config = await client.getSandboxConfig({ sandboxId: sandbox.id }).catch((error: unknown) => {
      throw explainPolicyError(error, { sandbox: name });
    });
    const global = config.policySource === sandboxv1.PolicySource.GLOBAL;
    const active = sandbox.currentPolicyVersion;
    if (global || active === 0 || active === config.version)
      return {
        policy: config.policy,
        version: global ? config.globalPolicyVersion : config.version,
        hash: config.policyHash,
        global,
        loaded: global || active > 0,
      };
    const status = await client.getSandboxPolicyStatus({ name, version: active }).catch((error: unknown) => {
      throw explainPolicyError(error, { sandbox: name, version: active });
    });
    return {
      policy: status.revision?.policy,
      version: active,
      hash: status.revision?.policyHash ?? "",
      global,
      loaded: true,
    };
  }, target);
  if (ctx.json) {
    ctx.output.json({
      sandbox: name,
      version: effective.version,
      policy_hash: effective.hash,
      policy_source: effective.global ? "global" : "sandbox",
      loaded: effective.loaded,
      policy: effective.policy ? policyToDocument(effective.policy) : null,
    });
    return 0;
  }
  if (!effective.policy) {
    ctx.output.note(
      `Sandbox '${name}' has no policy yet: its supervisor discovers one when it starts (see: openshell policy list ${name})`,
    );
    return 0;
  }
  if (effective.global)
    ctx.output.note("The global policy (it overrides the sandbox's own; see: openshell policy get --global)");
  else if (!effective.loaded)
    ctx.output.note(
      `Policy version ${effective.version}, not loaded by the sandbox yet (see: openshell policy get ${name})`,
    );
  // The policy may be the one the sandbox discovered and synced back: its text is printed terminal-safe.
  ctx.output.print(terminalSafe(policyToYaml(effective.policy).trimEnd(), { multiline: true }));
  return 0;
}
