import { defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxListCommand = defineCommand({
  path: "sandbox list",
  aliases: ["ls"],
  description: "list sandboxes",
  arguments: {},
  options: {
    limit: option.integer("--limit <n>", "at most this many", { default: 100, complete: "none" }),
    offset: option.integer("--offset <n>", "skip this many", { default: 0, complete: "none" }),
    names: option.flag("--names", "print names only"),
    ids: option.flag("--ids", "print ids only"),
  },
});
