import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const policySetCommand = defineCommand({
  path: "policy set",
  description: "submit a new policy version for a sandbox (or the global policy)",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    policy: option.string("--policy <file>", "policy YAML (required)", { complete: "files" }),
    global: option.flag("--global", "set the global policy: it overrides every sandbox's policy"),
    yes: option.flag("-y, --yes", "do not ask for confirmation (--global)"),
    wait: option.flag("--wait", "wait until the sandbox reports the version loaded or failed"),
    timeout: option.integer("--timeout <seconds>", "how long --wait waits", {
      complete: "none",
      default: 60,
    }),
  },
  helpAfter: `
The file is checked here first (schema, safety and L7 rules; problems as FILE:LINE), then the
gateway stores it as a new version (the same policy again keeps its version) and tells the
sandbox's supervisor at once; the supervisor validates it and reports it loaded or failed. A
policy that fails to load leaves the previous version in force.

Enforced in the sandbox: network_policies (host, port, binary, SSRF checks; everything else gets a
403 from the egress proxy; protocol: rest endpoints have their TLS terminated with the sandbox's CA
and every HTTP request checked against the L7 rules), filesystem_policy (Landlock), process
identity and the seccomp blocklist for every shell, command and sftp session.

Only network_policies are live-updatable; filesystem paths may only be added, landlock and
process are fixed when the sandbox starts.

--wait exit codes: 0 loaded (or superseded by a newer version), 1 failed to load, 124 timeout.
--global asks for confirmation (pass --yes when there is no terminal); while a global policy is
set, sandbox policy updates are refused until: openshell policy delete --global`,
});
