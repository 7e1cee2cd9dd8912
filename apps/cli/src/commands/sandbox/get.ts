import { argument, defineCommand } from "../../command-spec/define-command.js";

export const sandboxGetCommand = defineCommand({
  path: "sandbox get",
  description: "show one sandbox (default: the last used)",
  arguments: {
    name: argument.optional("sandbox name", { complete: "sandboxes" }),
  },
  options: {},
});
