import { argument, defineCommand } from "../../command-spec/define-command.js";

export const sandboxSshConfigCommand = defineCommand({
  path: "sandbox ssh-config",
  description: "print an OpenSSH Host block for the sandbox (use with ssh -F or in ~/.ssh/config)",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {},
});
