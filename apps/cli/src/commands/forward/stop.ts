import { argument, defineCommand } from "../../command-spec/define-command.js";

export const forwardStopCommand = defineCommand({
  path: "forward stop",
  description: "stop a background forward",
  arguments: {
    port: argument.required("local port", { complete: "none" }),
    name: argument.optional("sandbox name (default: any sandbox forwarding that port)", {
      complete: "sandboxes",
    }),
  },
  options: {},
});
