import { defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxCreateCommand = defineCommand({
  path: "sandbox create",
  description: "create a sandbox, wait until it is ready, then run CMD or open a shell",
  usage: "[options] [-- CMD...]",
  trailingCommand: true,
  arguments: {},
  options: {
    name: option.string("--name <name>", "sandbox name (default: generated)", { complete: "none" }),
    from: option.string(
      "--from <image>",
      "sandbox image: a reference (registry/name:tag) or a community name (Kubernetes gateways; the VM driver runs its own image)",
      { complete: "none" },
    ),
    env: option.list("-e, --env <KEY=VALUE>", "environment variable for the sandbox (repeatable)", {
      complete: "none",
    }),
    cpus: option.string("--cpus <n>", "vCPUs of the sandbox (default: the gateway's, --vm-vcpus)", {
      complete: "none",
    }),
    memory: option.string(
      "--memory <size>",
      "memory of the sandbox, e.g. 512Mi or 2Gi (default: the gateway's)",
      {
        complete: "none",
      },
    ),
    disk: option.string("--disk <size>", "disk size of the sandbox, e.g. 10Gi (default: the image's, 2Gi)", {
      complete: "none",
    }),
    policy: option.string("--policy <file>", "sandbox policy YAML", { complete: "files" }),
    upload: option.string(
      "--upload <local[:dest]>",
      "upload a file or directory before running CMD (dest default /sandbox)",
      { complete: "files" },
    ),
    gitIgnore: option.negatable("--no-git-ignore", "with --upload: also send files .gitignore excludes"),
    keep: option.negatable("--no-keep", "delete the sandbox when CMD or the shell exits"),
    tty: option.tristate("--tty", "force a terminal for CMD", "never allocate a terminal"),
    bootstrap: option.negatable("--no-bootstrap", "do not start a local gateway when none is reachable"),
  },
});
