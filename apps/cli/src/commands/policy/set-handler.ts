import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { readPolicyFile } from "../../policy/policy-file.js";
import { latestVersion, submitted } from "../../policy/policy-submit.js";
import { shortHash } from "../../policy/policy-view.js";
import { confirmOrRefuse } from "../../ui/confirm.js";
import type { policySetCommand } from "./set.js";

/** `policy set [NAME] --policy FILE` (spec §4.6): checked here, submitted, optionally waited for. */
export async function run(input: CommandInput<typeof policySetCommand>): Promise<number> {
  const { options } = input;
  const ctx = CliContext.of(input);
  if (!options.policy)
    throw new OpenShellError(
      "invalid_argument",
      "--policy FILE is required: the policy YAML to submit (see: openshell policy set --help)",
    );
  if (options.global && input.args.name)
    throw new OpenShellError(
      "invalid_argument",
      `--global sets the policy of every sandbox; leave out the sandbox name '${input.args.name}'`,
    );
  // Before any connection: a bad file is exit 2 with FILE:LINE reasons.
  const { policy, warnings } = readPolicyFile(options.policy);
  for (const warning of warnings) ctx.output.warn(warning);
  const target = ctx.target();

  if (options.global) {
    const confirmed = await confirmOrRefuse({
      yes: options.yes,
      question: "Set the global policy? It overrides the policy of every sandbox on this gateway.",
      refusal:
        "--global replaces the policy of every sandbox on this gateway; pass --yes to confirm (there is no terminal to ask on)",
    });
    if (!confirmed) {
      ctx.output.note("Nothing was changed.");
      return 1;
    }
    const response = await ctx.withGateway(
      (client) =>
        client.updateConfig({ global: true, policy }).catch((error: unknown) => {
          throw explainPolicyError(error, { global: true });
        }),
      target,
    );
    if (ctx.json)
      ctx.output.json({ scope: "global", version: response.version, policy_hash: response.policyHash });
    else
      ctx.output.success(
        `Global policy version ${response.version} set (hash: ${shortHash(response.policyHash)}); it overrides every sandbox's policy until: openshell policy delete --global`,
      );
    return 0;
  }

  const name = ctx.sandboxName(input.args.name, target);
  ctx.rememberSandbox(target, name);
  return ctx.withGateway(async (client) => {
    const before = await latestVersion(client, name);
    const response = await client.updateConfig({ name, policy }).catch((error: unknown) => {
      throw explainPolicyError(error, { sandbox: name });
    });
    return submitted(ctx, client, name, before, response, options);
  }, target);
}
