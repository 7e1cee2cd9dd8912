import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const policyUpdateCommand = defineCommand({
  path: "policy update",
  description: "change a sandbox's policy in place: add or remove endpoints and rules",
  arguments: {
    name: argument.optional("sandbox name (default: the last used)", { complete: "sandboxes" }),
  },
  options: {
    addEndpoint: option.list(
      "--add-endpoint <host:port[:access[:protocol[:enforcement]]]>",
      "allow an endpoint (a new network rule; access read-only|read-write|full, protocol rest|sql)",
      { complete: "none" },
    ),
    removeEndpoint: option.list("--remove-endpoint <host:port>", "remove an endpoint from every rule", {
      complete: "none",
    }),
    addAllow: option.list("--add-allow <host:port:METHOD:path_glob>", "add an L7 allow rule to an endpoint", {
      complete: "none",
    }),
    addDeny: option.list("--add-deny <host:port:METHOD:path_glob>", "add an L7 deny rule to an endpoint", {
      complete: "none",
    }),
    removeRule: option.list("--remove-rule <name>", "remove a network rule by name", { complete: "none" }),
    binary: option.list("--binary <path>", "a binary allowed to use the --add-endpoint rule", {
      complete: "files",
    }),
    ruleName: option.string("--rule-name <name>", "name of the rule --add-endpoint creates (one endpoint)", {
      complete: "none",
    }),
    dryRun: option.flag("--dry-run", "show the resulting policy change; send nothing"),
    wait: option.flag("--wait", "wait until the sandbox reports the version loaded or failed"),
    timeout: option.integer("--timeout <seconds>", "how long --wait waits", {
      complete: "none",
      default: 60,
    }),
  },
  helpAfter: `
The gateway merges the changes into the sandbox's latest policy as a new version (retrying when
another update lands at the same time). --dry-run merges here against the latest version and
prints the difference. Generated rule names are allow_<host>_<port>.

Network rules apply to the sandbox's next connection once loaded (L7 rules of protocol: rest
endpoints to its next request). --wait exit codes: 0 loaded, 1 failed to load, 124 timeout.`,
});
