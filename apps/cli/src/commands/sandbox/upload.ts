import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxUploadCommand = defineCommand({
  path: "sandbox upload",
  description: "copy a local file or directory into a sandbox (honours .gitignore)",
  arguments: {
    name: argument.required("sandbox name", { complete: "sandboxes" }),
    local: argument.required("local file or directory", { complete: "files" }),
    dest: argument.optional("directory in the sandbox", { default: "/sandbox", complete: "none" }),
  },
  options: {
    gitIgnore: option.negatable("--no-git-ignore", "also send files .gitignore excludes"),
  },
});
