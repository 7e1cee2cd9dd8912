import { argument, defineCommand } from "../../command-spec/define-command.js";

export const gatewaySelectCommand = defineCommand({
  path: "gateway select",
  description: "make a gateway the active one (without NAME: list gateways)",
  arguments: {
    name: argument.optional("gateway name", { complete: "gateways" }),
  },
  options: {},
});
