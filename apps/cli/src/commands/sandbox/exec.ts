import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxExecCommand = defineCommand({
  path: "sandbox exec",
  description: "run a command in a sandbox; stdin is passed through, its exit code returned",
  usage: "[NAME] [options] -- CMD...",
  trailingCommand: true,
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    name: option.string("-n, --name <name>", "sandbox name", { complete: "sandboxes" }),
    workdir: option.string("--workdir <dir>", "working directory", { complete: "none" }),
    timeout: option.integer("--timeout <seconds>", "kill the command after this long (0 = none)", {
      default: 0,
      complete: "none",
    }),
    env: option.list("-e, --env <KEY=VALUE>", "extra environment variable (repeatable)", {
      complete: "none",
    }),
    tty: option.tristate("--tty", "interactive terminal (through SSH)", "never allocate a terminal"),
  },
});
