import { defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayListCommand = defineCommand({
  path: "gateway list",
  aliases: ["ls"],
  description: "list the gateways this CLI knows",
  arguments: {},
  options: {
    names: option.flag("--names", "print names only"),
  },
});
