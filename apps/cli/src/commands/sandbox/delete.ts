import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxDeleteCommand = defineCommand({
  path: "sandbox delete",
  aliases: ["rm"],
  description: "delete sandboxes and everything in them",
  arguments: {
    names: argument.variadic("sandbox names", { complete: "sandboxes" }),
  },
  options: {
    all: option.flag("--all", "delete every sandbox on the gateway"),
    wait: option.negatable("--no-wait", "return without waiting for the sandbox to be gone"),
  },
});
