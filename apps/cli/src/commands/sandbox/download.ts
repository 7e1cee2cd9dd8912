import { argument, defineCommand } from "../../command-spec/define-command.js";

export const sandboxDownloadCommand = defineCommand({
  path: "sandbox download",
  description: "copy a file or directory out of a sandbox",
  arguments: {
    name: argument.required("sandbox name", { complete: "sandboxes" }),
    path: argument.required("path in the sandbox", { complete: "none" }),
    dest: argument.optional("local directory", { default: ".", complete: "files" }),
  },
  options: {},
});
