import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxGetCommand = defineCommand({
  path: "sandbox get",
  description: "show one sandbox (default: the last used)",
  arguments: {
    name: argument.optional("sandbox name", { complete: "sandboxes" }),
  },
  options: {
    policyOnly: option.flag("--policy-only", "print only the sandbox's effective policy (YAML)"),
  },
});
