import { Command, Option } from "commander";

/** What every command module exports: run with parsed options; a number is the exit code. */
export interface CommandInvocation {
  /** The command's own options merged with the global ones. */
  options: Record<string, unknown>;
  /** Positional arguments, in declaration order. */
  args: unknown[];
  /** Everything after the first `--` on the command line. */
  trailing: string[];
}

type CommandModule = { run(invocation: CommandInvocation): Promise<number | undefined> };
type Loader = () => Promise<CommandModule>;

export interface ProgramHooks {
  /** Receives each command's exit code. */
  onExit(code: number): void;
  trailing: string[];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const integer = (value: string) => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`'${value}' is not a non-negative integer`);
  return parsed;
};

/**
 * The command tree. Each action imports its module only when run, so `openshell --version` and
 * `--help` load commander alone (cold start, bench/cli-bench.ts).
 */
export function buildProgram(version: string, hooks: ProgramHooks): Command {
  const program = new Command("openshell")
    .description("Run AI agents and commands in policy-governed sandboxes through one gateway.")
    .version(version, "-V, --version", "print the version")
    .option("-g, --gateway <name>", "gateway to use (env OPENSHELL_GATEWAY; default: the active gateway)")
    .option("--gateway-endpoint <url>", "talk to this gateway URL directly (env OPENSHELL_GATEWAY_ENDPOINT)")
    .addOption(
      new Option("-o, --output <format>", "output format of list/get/status commands").choices([
        "text",
        "json",
      ]),
    )
    .option(
      "-v, --verbose",
      "more detail, including stack traces on errors",
      (_value, previous: number) => previous + 1,
      0,
    )
    // Set before the subcommands exist: commander copies these settings only into commands created later.
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      `
Examples:
  openshell gateway start                      start a local gateway (microVM sandboxes)
  openshell sandbox create -- echo hello       create a sandbox and run a command in it
  openshell sandbox connect                    open a shell in the last-used sandbox
  openshell sandbox list -o json

Exit codes: 0 ok, 1 failure, 2 bad usage, 3 gateway unreachable or not configured, 4 not found,
5 sandbox not ready / timed out, 130 interrupted; exec, connect and create -- CMD return the
remote command's own exit code.`,
    );

  const action = (load: Loader) =>
    async function (this: Command, ...values: unknown[]) {
      const module = await load();
      const args = values.slice(0, this.registeredArguments.length);
      const code = await module.run({ options: this.optsWithGlobals(), args, trailing: hooks.trailing });
      hooks.onExit(code ?? 0);
    };

  const gateway = program.command("gateway").alias("gw").description("start, stop and choose gateways");
  gateway
    .command("start")
    .description(
      "start (or resume) a local gateway, as a background process or in Docker, and make it active",
    )
    .option(
      "--name <name>",
      "gateway name (default: -g, OPENSHELL_GATEWAY, the active gateway, or 'openshell')",
    )
    .option(
      "--port <port>",
      "API port on 127.0.0.1 (default: the stored port, OPENSHELL_GATEWAY_PORT or 8080)",
      integer,
    )
    .option("--drivers <driver>", "compute driver: vm (microVMs)", "vm")
    .option("--plaintext", "serve plain HTTP/2 instead of mTLS (local experiments only)")
    .option("--recreate", "throw away this gateway's state (sandboxes, PKI, secrets) and start fresh")
    .option(
      "--docker",
      "run the gateway in a Docker container (volume, network, restart policy unless-stopped)",
    )
    .option("--vm-vcpus <n>", "vCPUs per sandbox VM", integer)
    .option("--vm-mem-mib <n>", "memory per sandbox VM in MiB", integer)
    .action(action(() => import("./commands/gateway/start.js")));
  gateway
    .command("stop")
    .description("stop a local gateway; sandboxes are powered off and keep their disks")
    .option("--name <name>", "gateway name (default: the active gateway)")
    .action(action(() => import("./commands/gateway/stop.js")));
  gateway
    .command("destroy")
    .description("stop a local gateway and delete all its state, or forget a registered one")
    .option("--name <name>", "gateway name (default: the active gateway)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(action(() => import("./commands/gateway/destroy.js")));
  gateway
    .command("status")
    .description("is the gateway running and reachable; version, driver, sandbox count")
    .option("--name <name>", "gateway name (default: the active gateway)")
    .action(action(() => import("./commands/gateway/status.js")));
  gateway
    .command("select")
    .description("make a gateway the active one (without NAME: list gateways)")
    .argument("[name]", "gateway name")
    .action(action(() => import("./commands/gateway/select.js")));
  gateway
    .command("list")
    .alias("ls")
    .description("list the gateways this CLI knows")
    .action(action(() => import("./commands/gateway/list.js")));
  gateway
    .command("add")
    .description("register a gateway that runs elsewhere")
    .argument("<endpoint>", "http://host:port or https://host:port")
    .option("--name <name>", "name for it (default: derived from the host)")
    .option("--ca-cert <file>", "CA that signed the gateway's certificate (https)")
    .option("--client-cert <file>", "client certificate for mTLS")
    .option("--client-key <file>", "key of the client certificate")
    .action(action(() => import("./commands/gateway/add.js")));
  gateway
    .command("info")
    .description("show what the CLI has recorded about a gateway")
    .option("--name <name>", "gateway name (default: the active gateway)")
    .action(action(() => import("./commands/gateway/info.js")));

  program
    .command("status")
    .description("is the active gateway reachable; version, driver, sandbox count")
    .action(action(() => import("./commands/status.js")));

  const sandbox = program.command("sandbox").alias("sb").description("create, use and delete sandboxes");
  sandbox
    .command("create")
    .description("create a sandbox, wait until it is ready, then run CMD or open a shell")
    .usage("[options] [-- CMD...]")
    .option("--name <name>", "sandbox name (default: generated)")
    .option("-e, --env <KEY=VALUE>", "environment variable for the sandbox (repeatable)", collect)
    .option("--cpus <n>", "vCPUs of the sandbox (default: the gateway's, --vm-vcpus)")
    .option("--memory <size>", "memory of the sandbox, e.g. 512Mi or 2Gi (default: the gateway's)")
    .option("--disk <size>", "disk size of the sandbox, e.g. 10Gi (default: the image's, 2Gi)")
    .option("--policy <file>", "sandbox policy YAML")
    .option(
      "--upload <local[:dest]>",
      "upload a file or directory before running CMD (dest default /sandbox)",
    )
    .option("--no-git-ignore", "with --upload: also send files .gitignore excludes")
    .option("--no-keep", "delete the sandbox when CMD or the shell exits")
    .option("--tty", "force a terminal for CMD")
    .option("--no-tty", "never allocate a terminal")
    .option("--no-bootstrap", "do not start a local gateway when none is reachable")
    .action(action(() => import("./commands/sandbox/create.js")));
  sandbox
    .command("list")
    .alias("ls")
    .description("list sandboxes")
    .option("--limit <n>", "at most this many", integer, 100)
    .option("--offset <n>", "skip this many", integer, 0)
    .option("--names", "print names only")
    .option("--ids", "print ids only")
    .action(action(() => import("./commands/sandbox/list.js")));
  sandbox
    .command("get")
    .description("show one sandbox (default: the last used)")
    .argument("[name]", "sandbox name")
    .action(action(() => import("./commands/sandbox/get.js")));
  sandbox
    .command("delete")
    .alias("rm")
    .description("delete sandboxes and everything in them")
    .argument("[names...]", "sandbox names")
    .option("--all", "delete every sandbox on the gateway")
    .option("--no-wait", "return without waiting for the sandbox to be gone")
    .action(action(() => import("./commands/sandbox/delete.js")));
  sandbox
    .command("stop")
    .description("power a sandbox off, keeping its disk; it stays stopped until started")
    .argument("[name]", "sandbox name (default: the last used)")
    .addHelpText(
      "after",
      `
Waits until the sandbox is stopped. Its files stay; exec, connect and SSH refuse it until
'openshell sandbox start NAME'. It stays stopped across gateway restarts. Stopping a stopped
sandbox does nothing.`,
    )
    .action(action(() => import("./commands/sandbox/stop.js")));
  sandbox
    .command("start")
    .description("boot a stopped sandbox again from its disk and wait until it is ready")
    .argument("[name]", "sandbox name (default: the last used)")
    .option("--no-wait", "return once the sandbox is starting, without waiting for Ready")
    .addHelpText(
      "after",
      `
Waits for Ready like create (OPENSHELL_PROVISION_TIMEOUT, default 300 s), showing each step.
Starting a running sandbox does nothing; a sandbox in Error is booted again.`,
    )
    .action(action(() => import("./commands/sandbox/start.js")));
  sandbox
    .command("exec")
    .description("run a command in a sandbox; stdin is passed through, its exit code returned")
    .usage("[NAME] [options] -- CMD...")
    .argument("[name]", "sandbox name (default: the last used)")
    .option("-n, --name <name>", "sandbox name")
    .option("--workdir <dir>", "working directory")
    .option("--timeout <seconds>", "kill the command after this long (0 = none)", integer, 0)
    .option("-e, --env <KEY=VALUE>", "extra environment variable (repeatable)", collect)
    .option("--tty", "interactive terminal (through SSH)")
    .option("--no-tty", "never allocate a terminal")
    .action(action(() => import("./commands/sandbox/exec.js")));
  sandbox
    .command("connect")
    .description("open an interactive shell in a sandbox over SSH")
    .argument("[name]", "sandbox name (default: the last used)")
    .action(action(() => import("./commands/sandbox/connect.js")));
  sandbox
    .command("ssh-config")
    .description("print an OpenSSH Host block for the sandbox (use with ssh -F or in ~/.ssh/config)")
    .argument("[name]", "sandbox name (default: the last used)")
    .action(action(() => import("./commands/sandbox/ssh-config.js")));
  sandbox
    .command("upload")
    .description("copy a local file or directory into a sandbox (honours .gitignore)")
    .argument("<name>", "sandbox name")
    .argument("<local>", "local file or directory")
    .argument("[dest]", "directory in the sandbox", "/sandbox")
    .option("--no-git-ignore", "also send files .gitignore excludes")
    .action(action(() => import("./commands/sandbox/upload.js")));
  sandbox
    .command("download")
    .description("copy a file or directory out of a sandbox")
    .argument("<name>", "sandbox name")
    .argument("<path>", "path in the sandbox")
    .argument("[dest]", "local directory", ".")
    .action(action(() => import("./commands/sandbox/download.js")));
  sandbox
    .command("forward")
    .description("forward a local port to the same port inside the sandbox (until Ctrl-C, or -d)")
    .argument("<name>", "sandbox name")
    .argument("<port>", "[BIND:]PORT, e.g. 8000 or 127.0.0.1:8000")
    .option("-d, --background", "keep forwarding in the background (stop with: openshell forward stop)")
    .action(action(() => import("./commands/sandbox/forward.js")));

  const forward = program.command("forward").alias("fwd").description("background port forwards");
  forward
    .command("list")
    .description("list background forwards and whether they still run")
    .action(action(() => import("./commands/forward/list.js")));
  forward
    .command("stop")
    .description("stop a background forward")
    .argument("<port>", "local port")
    .argument("[name]", "sandbox name (default: any sandbox forwarding that port)")
    .action(action(() => import("./commands/forward/stop.js")));

  program
    .command("logs")
    .alias("lg")
    .description("print a sandbox's logs (default: the last used sandbox)")
    .argument("[name]", "sandbox name")
    .option("-n, --lines <n>", "how many recent lines", integer, 200)
    .option("--tail", "keep following new lines")
    .option("--since <duration>", "only lines newer than this, e.g. 30s, 5m, 1h")
    .option("--source <source>", "gateway | sandbox (repeatable; default: all)", collect)
    .option("--level <level>", "minimum level: error|warn|info|debug|trace")
    .action(action(() => import("./commands/logs.js")));

  program
    .command("ssh-proxy", { hidden: true })
    .description("OpenSSH ProxyCommand: tunnels stdin/stdout to a sandbox through the gateway")
    .option("--gateway <url>", "token mode: http(s)://host:port/connect/ssh")
    .option("--sandbox-id <id>", "token mode: sandbox id")
    .option("--token <token>", "token mode: SSH session token")
    .option("--gateway-name <name>", "gateway whose client certificates to use; with --name: name mode")
    .option("--name <sandbox>", "name mode: sandbox name (a fresh session per connection)")
    .option("--tls-ca <file>", "CA of the gateway's certificate")
    .option("--tls-cert <file>", "client certificate for mTLS")
    .option("--tls-key <file>", "its key")
    .action(action(() => import("./commands/ssh-proxy.js")));

  program
    .command("completion")
    .alias("completions")
    .description("print a shell completion script: bash, zsh or fish")
    .argument("<shell>", "bash | zsh | fish")
    .addHelpText(
      "after",
      `
Install:
  bash: openshell completion bash > /etc/bash_completion.d/openshell
  zsh:  openshell completion zsh > "\${fpath[1]}/_openshell"
  fish: openshell completion fish > ~/.config/fish/completions/openshell.fish`,
    )
    .action(action(() => import("./commands/completion.js")));

  return program;
}
