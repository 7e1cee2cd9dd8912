import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const settingsGetCommand = defineCommand({
  path: "settings get",
  description: "a sandbox's effective settings and where each comes from (sandbox or global)",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    global: option.flag("--global", "the gateway-wide settings instead"),
  },
});
