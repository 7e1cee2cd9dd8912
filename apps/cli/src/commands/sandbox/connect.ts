import { argument, defineCommand } from "../../command-spec/define-command.js";

export const sandboxConnectCommand = defineCommand({
  path: "sandbox connect",
  description: "open an interactive shell in a sandbox over SSH",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {},
});
