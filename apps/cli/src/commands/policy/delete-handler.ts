import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { confirmOrRefuse } from "../../ui/confirm.js";
import type { policyDeleteCommand } from "./delete.js";

/** `policy delete --global [--yes]`: removes the global policy (the `policy` global setting). */
export async function run(input: CommandInput<typeof policyDeleteCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  if (!input.options.global)
    throw new OpenShellError(
      "invalid_argument",
      "only the global policy can be deleted: pass --global (a sandbox's policy is changed with 'openshell policy set' or 'openshell policy update')",
    );
  const target = ctx.target();
  const confirmed = await confirmOrRefuse({
    yes: input.options.yes,
    question: "Delete the global policy? Every sandbox goes back to its own policy.",
    refusal: "deleting the global policy changes the policy of every sandbox; pass --yes to confirm",
  });
  if (!confirmed) {
    ctx.output.note("Nothing was changed.");
    return 1;
  }
  const response = await ctx.withGateway(
    (client) =>
      client
        .updateConfig({ global: true, settingKey: "policy", deleteSetting: true })
        .catch((error: unknown) => {
          throw explainPolicyError(error, { global: true });
        }),
    target,
  );
  if (ctx.json) ctx.output.json({ scope: "global", deleted: response.deleted });
  else if (response.deleted)
    ctx.output.success("Global policy deleted; every sandbox is governed by its own policy again");
  else ctx.output.note("No global policy was set; nothing was changed.");
  return 0;
}
