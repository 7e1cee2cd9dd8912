import { settingValueToText } from "@openshell/policy";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { policySourceName, settingScopeName, shortHash } from "../../policy/policy-view.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";
import type { settingsGetCommand } from "./get.js";

/** `settings get [NAME] [--global]`: effective settings (and where they come from), or the global ones. */
export async function run(input: CommandInput<typeof settingsGetCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const target = ctx.target();
  if (input.options.global) {
    const response = await ctx.withGateway((client) => client.getGatewayConfig({}), target);
    const keys = Object.keys(response.settings).sort();
    if (ctx.json) {
      ctx.output.json({
        scope: "global",
        settings_revision: Number(response.settingsRevision),
        settings: Object.fromEntries(
          keys.map((key) => {
            const value = response.settings[key];
            return [key, value?.value.case ? settingValueToText(value) : null];
          }),
        ),
      });
      return 0;
    }
    ctx.output.table(
      ["KEY", "VALUE"],
      keys.map((key) => {
        const value = response.settings[key];
        return [key, value?.value.case ? settingValueToText(value) : "<unset>"];
      }),
    );
    return 0;
  }
  const name = ctx.sandboxName(input.args.name, target);
  ctx.rememberSandbox(target, name);
  const config = await ctx.withGateway(async (client) => {
    const sandbox = await getSandbox(client, name);
    return client.getSandboxConfig({ sandboxId: sandbox.id }).catch((error: unknown) => {
      throw explainPolicyError(error, { sandbox: name });
    });
  }, target);
  const keys = Object.keys(config.settings).sort();
  if (ctx.json) {
    ctx.output.json({
      sandbox: name,
      config_revision: config.configRevision.toString(),
      policy_version: config.version,
      policy_hash: config.policyHash,
      policy_source: policySourceName(config.policySource),
      settings: Object.fromEntries(
        keys.map((key) => {
          const setting = config.settings[key];
          return [
            key,
            {
              value: setting?.value?.value.case ? settingValueToText(setting.value) : null,
              scope: settingScopeName(setting?.scope ?? 0),
            },
          ];
        }),
      ),
    });
    return 0;
  }
  ctx.output.table(
    ["KEY", "VALUE", "SCOPE"],
    keys.map((key) => {
      const setting = config.settings[key];
      const set = setting?.value?.value.case !== undefined;
      return [
        key,
        set ? settingValueToText(setting?.value) : "<unset>",
        settingScopeName(setting?.scope ?? 0),
      ];
    }),
  );
  ctx.output.note(
    config.version > 0
      ? `Policy: latest version ${config.version} (hash: ${shortHash(config.policyHash)}, source: ${policySourceName(config.policySource)}); its status: openshell policy get ${name}`
      : "Policy: none yet (the sandbox discovers one when it starts)",
  );
  return 0;
}
