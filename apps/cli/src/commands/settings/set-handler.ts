import { OpenShellError } from "@openshell/core";
import { parseSettingValue, settingValueToText } from "@openshell/policy";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { requireSettingKey, settingScopeText } from "../../policy/setting-key.js";
import { confirmOrRefuse } from "../../ui/confirm.js";
import type { settingsSetCommand } from "./set.js";

/** `settings set [NAME] --key K --value V [--global] [--yes]`. */
export async function run(input: CommandInput<typeof settingsSetCommand>): Promise<number> {
  const { options } = input;
  const ctx = CliContext.of(input);
  const key = requireSettingKey(options.key, "set");
  if (options.value === undefined)
    throw new OpenShellError("invalid_argument", "--value is required (see: openshell settings set --help)");
  // Checked against the registry here: a bad key or value is exit 2 before any connection.
  const value = parseSettingValue(key, options.value);
  const target = ctx.target();
  const global = options.global;
  const name = global ? "" : ctx.sandboxName(input.args.name, target);
  if (global) {
    const confirmed = await confirmOrRefuse({
      yes: options.yes,
      question: `Set '${key}' for every sandbox on this gateway? It overrides their own values.`,
      refusal: `--global sets '${key}' for every sandbox on this gateway; pass --yes to confirm`,
    });
    if (!confirmed) {
      ctx.output.note("Nothing was changed.");
      return 1;
    }
  } else ctx.rememberSandbox(target, name);
  const response = await ctx.withGateway(
    (client) =>
      client.updateConfig({ name, global, settingKey: key, settingValue: value }).catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox: name, key, global });
      }),
    target,
  );
  const text = settingValueToText(value);
  if (ctx.json)
    ctx.output.json({
      ...(global ? { scope: "global" } : { scope: "sandbox", sandbox: name }),
      key,
      value: text,
      settings_revision: Number(response.settingsRevision),
    });
  else ctx.output.success(`Setting '${key}' set to ${text} (${settingScopeText(global, name)})`);
  return 0;
}
