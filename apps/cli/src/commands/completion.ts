import { argument, defineCommand } from "../command-spec/define-command.js";

export const SHELLS = ["bash", "zsh", "fish"] as const;

export const completionCommand = defineCommand({
  path: "completion",
  aliases: ["completions"],
  description: "print a shell completion script: bash, zsh or fish",
  arguments: {
    shell: argument.required("bash | zsh | fish", { complete: SHELLS }),
  },
  options: {},
  helpAfter: `
Install:
  bash: openshell completion bash > /etc/bash_completion.d/openshell
  zsh:  openshell completion zsh > "\${fpath[1]}/_openshell"
  fish: openshell completion fish > ~/.config/fish/completions/openshell.fish`,
});
