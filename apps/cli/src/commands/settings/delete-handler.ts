import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { requireSettingKey, settingScopeText } from "../../policy/setting-key.js";
import { confirmOrRefuse } from "../../ui/confirm.js";
import type { settingsDeleteCommand } from "./delete.js";

/** `settings delete [NAME] --key K [--global] [--yes]`. */
export async function run(input: CommandInput<typeof settingsDeleteCommand>): Promise<number> {
  const { options } = input;
  const ctx = CliContext.of(input);
  const key = requireSettingKey(options.key, "delete");
  const target = ctx.target();
  const global = options.global;
  const name = global ? "" : ctx.sandboxName(input.args.name, target);
  if (global) {
    const confirmed = await confirmOrRefuse({
      yes: options.yes,
      question: `Delete the global value of '${key}'? Sandboxes go back to their own values.`,
      refusal: `deleting the global '${key}' changes every sandbox on this gateway; pass --yes to confirm`,
    });
    if (!confirmed) {
      ctx.output.note("Nothing was changed.");
      return 1;
    }
  } else ctx.rememberSandbox(target, name);
  const response = await ctx.withGateway(
    (client) =>
      client.updateConfig({ name, global, settingKey: key, deleteSetting: true }).catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox: name, key, global });
      }),
    target,
  );
  if (ctx.json)
    ctx.output.json({
      ...(global ? { scope: "global" } : { scope: "sandbox", sandbox: name }),
      key,
      deleted: response.deleted,
      settings_revision: Number(response.settingsRevision),
    });
  else if (response.deleted)
    ctx.output.success(`Setting '${key}' deleted (${settingScopeText(global, name)})`);
  else
    ctx.output.note(`Setting '${key}' was not set (${settingScopeText(global, name)}); nothing was changed.`);
  return 0;
}
