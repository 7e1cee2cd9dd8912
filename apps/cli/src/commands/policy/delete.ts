import { defineCommand, option } from "../../command-spec/define-command.js";

export const policyDeleteCommand = defineCommand({
  path: "policy delete",
  description: "delete the global policy: sandboxes are governed by their own policies again",
  arguments: {},
  options: {
    global: option.flag("--global", "required: only the global policy can be deleted"),
    yes: option.flag("-y, --yes", "do not ask for confirmation"),
  },
});
