import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const settingsDeleteCommand = defineCommand({
  path: "settings delete",
  description: "remove a sandbox's (or with --global the gateway-wide) value of a setting",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    key: option.string("--key <key>", "setting name (ocsf_json_enabled)", {
      complete: ["ocsf_json_enabled"],
    }),
    global: option.flag("--global", "the gateway-wide value"),
    yes: option.flag("-y, --yes", "do not ask for confirmation (--global)"),
  },
});
