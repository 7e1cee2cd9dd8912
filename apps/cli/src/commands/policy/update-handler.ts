import { create } from "@bufbuild/protobuf";
import { buildPolicyUpdatePlan, mergePolicy, policyToYaml } from "@openshell/policy";
import { sandboxv1 } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { lineDiffHunks } from "../../policy/line-diff.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { latestVersion, submitted } from "../../policy/policy-submit.js";
import { terminalSafe } from "../../ui/terminal-safe.js";
import type { policyUpdateCommand } from "./update.js";

/** `policy update [NAME] --add-endpoint … --remove-rule … [--dry-run] [--wait]`: merge operations (§4.6). */
export async function run(input: CommandInput<typeof policyUpdateCommand>): Promise<number> {
  const { options } = input;
  const ctx = CliContext.of(input);
  // Bad flags are exit 2 before any connection.
  const operations = buildPolicyUpdatePlan({
    addEndpoints: options.addEndpoint,
    removeEndpoints: options.removeEndpoint,
    addAllow: options.addAllow,
    addDeny: options.addDeny,
    removeRules: options.removeRule,
    binaries: options.binary,
    ...(options.ruleName !== undefined ? { ruleName: options.ruleName } : {}),
  });
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);
  ctx.rememberSandbox(target, name);

  if (options.dryRun)
    return ctx.withGateway(async (client) => {
      const status = await client.getSandboxPolicyStatus({ name }).catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox: name });
      });
      const current = status.revision?.policy ?? create(sandboxv1.SandboxPolicySchema);
      const merged = mergePolicy(current, operations);
      const before = policyToYaml(current);
      const after = policyToYaml(merged.policy);
      if (ctx.json) {
        ctx.output.json({
          sandbox: name,
          base_version: status.revision?.version ?? 0,
          changed: merged.changed,
          warnings: merged.warnings,
          policy: after,
        });
        return 0;
      }
      for (const warning of merged.warnings) ctx.output.warn(terminalSafe(warning));
      const version = status.revision?.version ?? 0;
      if (!merged.changed) {
        ctx.output.note(`Dry run: the changes leave policy version ${version} as it is; nothing was sent.`);
        return 0;
      }
      ctx.output.note(
        `Dry run against policy version ${version} ('-' removed, '+' added); nothing was sent:`,
      );
      // The current policy may have been synced from the sandbox: shown terminal-safe.
      for (const line of lineDiffHunks(before, after)) ctx.output.print(terminalSafe(line));
      return 0;
    }, target);

  return ctx.withGateway(async (client) => {
    const before = await latestVersion(client, name);
    const response = await client
      .updateConfig({ name, mergeOperations: operations })
      .catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox: name });
      });
    return submitted(ctx, client, name, before, response, options);
  }, target);
}
