import { defineCommand } from "../../command-spec/define-command.js";

export const forwardListCommand = defineCommand({
  path: "forward list",
  description: "list background forwards and whether they still run",
  arguments: {},
  options: {},
});
