import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const policyListCommand = defineCommand({
  path: "policy list",
  description: "a sandbox's policy versions, newest first, with their statuses",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    limit: option.integer("--limit <n>", "at most this many versions", { complete: "none", default: 20 }),
    global: option.flag("--global", "the global policy's versions"),
  },
});
