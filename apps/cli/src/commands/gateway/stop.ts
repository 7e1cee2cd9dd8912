import { defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayStopCommand = defineCommand({
  path: "gateway stop",
  description: "stop a local gateway; sandboxes are powered off and keep their disks",
  arguments: {},
  options: {
    name: option.string("--name <name>", "gateway name (default: the active gateway)", {
      complete: "gateways",
    }),
  },
});
