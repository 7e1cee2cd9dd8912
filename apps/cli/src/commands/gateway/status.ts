import { defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayStatusCommand = defineCommand({
  path: "gateway status",
  description: "is the gateway running and reachable; version, driver, sandbox count",
  arguments: {},
  options: {
    name: option.string("--name <name>", "gateway name (default: the active gateway)", {
      complete: "gateways",
    }),
  },
});
