import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxStartCommand = defineCommand({
  path: "sandbox start",
  description: "boot a stopped sandbox again from its disk and wait until it is ready",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    wait: option.negatable("--no-wait", "return once the sandbox is starting, without waiting for Ready"),
  },
  helpAfter: `
Waits for Ready like create (OPENSHELL_PROVISION_TIMEOUT, default 300 s), showing each step.
Starting a running sandbox does nothing; a sandbox in Error is booted again.`,
});
