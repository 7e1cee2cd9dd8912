import { argument, defineCommand } from "../../command-spec/define-command.js";

export const sandboxStopCommand = defineCommand({
  path: "sandbox stop",
  description: "power a sandbox off, keeping its disk; it stays stopped until started",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {},
  helpAfter: `
Waits until the sandbox is stopped. Its files stay; exec, connect and SSH refuse it until
'openshell sandbox start NAME'. It stays stopped across gateway restarts. Stopping a stopped
sandbox does nothing.`,
});
