import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const policyGetCommand = defineCommand({
  path: "policy get",
  description: "show a policy version: status, hash, load error; --full for its YAML",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    rev: option.integer("--rev <version>", "this version (default: the latest)", { complete: "none" }),
    full: option.flag("--full", "print the policy YAML too"),
    global: option.flag("--global", "the global policy instead of a sandbox's"),
  },
});
