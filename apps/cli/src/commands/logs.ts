import { argument, defineCommand, option } from "../command-spec/define-command.js";

export const logsCommand = defineCommand({
  path: "logs",
  aliases: ["lg"],
  description: "print a sandbox's logs (default: the last used sandbox)",
  arguments: {
    name: argument.optional("sandbox name", { complete: "sandboxes" }),
  },
  options: {
    lines: option.integer("-n, --lines <n>", "how many recent lines", { default: 200, complete: "none" }),
    tail: option.flag("--tail", "keep following new lines"),
    since: option.string("--since <duration>", "only lines newer than this, e.g. 30s, 5m, 1h", {
      complete: "none",
    }),
    source: option.list("--source <source>", "gateway | sandbox (repeatable; default: all)", {
      complete: ["gateway", "sandbox", "all"],
    }),
    // Checked (case-insensitively) by the handler, which names the levels in its error.
    level: option.string("--level <level>", "minimum level: error|warn|info|debug|trace", {
      complete: ["error", "warn", "info", "debug", "trace"],
    }),
  },
});
