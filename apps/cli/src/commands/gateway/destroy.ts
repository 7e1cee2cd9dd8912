import { defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayDestroyCommand = defineCommand({
  path: "gateway destroy",
  description: "stop a local gateway and delete all its state, or forget a registered one",
  arguments: {},
  options: {
    name: option.string("--name <name>", "gateway name (default: the active gateway)", {
      complete: "gateways",
    }),
    yes: option.flag("-y, --yes", "do not ask for confirmation"),
  },
});
