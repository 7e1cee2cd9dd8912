import { defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayInfoCommand = defineCommand({
  path: "gateway info",
  description: "show what the CLI has recorded about a gateway",
  arguments: {},
  options: {
    name: option.string("--name <name>", "gateway name (default: the active gateway)", {
      complete: "gateways",
    }),
  },
});
