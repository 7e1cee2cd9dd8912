import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const settingsSetCommand = defineCommand({
  path: "settings set",
  description: "set a setting for a sandbox, or for every sandbox with --global",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    key: option.string("--key <key>", "setting name (ocsf_json_enabled)", {
      complete: ["ocsf_json_enabled"],
    }),
    value: option.string("--value <value>", "its value (bools: true/false, yes/no, on/off, 1/0)", {
      complete: "none",
    }),
    global: option.flag("--global", "for every sandbox; overrides their own values"),
    yes: option.flag("-y, --yes", "do not ask for confirmation (--global)"),
  },
});
