import { defineCommand } from "../command-spec/define-command.js";

export const statusCommand = defineCommand({
  path: "status",
  description: "is the active gateway reachable; version, driver, sandbox count",
  arguments: {},
  options: {},
});
