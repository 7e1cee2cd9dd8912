import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import type { GatewayTarget, OpenShellClient } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import type { Sandbox } from "@openshell/proto";
import type { CliContext } from "../cli-context.js";
import type { RemoteCommandRunner } from "../files/sandbox-transfer.js";
import { shellCommandLine } from "../files/shell-quote.js";

/** Upstream's options: no host-key prompts, quiet, and a dead relay noticed within ~45 s. */
const SSH_BASE_OPTIONS = [
  "StrictHostKeyChecking=no",
  "UserKnownHostsFile=/dev/null",
  "GlobalKnownHostsFile=/dev/null",
  "LogLevel=ERROR",
  "ServerAliveInterval=15",
  "ServerAliveCountMax=3",
];

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"]);

/**
 * The CONNECT URL for an SSH session. A loopback (or empty) host in the gateway's answer means "where
 * you reached me": the CLI's own endpoint host and port are used (a gateway in Docker answers its
 * container port, which is published elsewhere on the host).
 */
export function connectUrl(
  session: { gatewayScheme: string; gatewayHost: string; gatewayPort: number; connectPath: string },
  endpoint: URL,
): string {
  const path = session.connectPath || "/connect/ssh";
  if (!session.gatewayHost || LOOPBACK.has(session.gatewayHost)) return `${endpoint.origin}${path}`;
  const port = session.gatewayPort || Number(endpoint.port);
  const scheme = session.gatewayScheme || endpoint.protocol.replace(":", "");
  return `${scheme}://${session.gatewayHost}:${port}${path}`;
}

/** A fresh SSH session token, wrapped into a ProxyCommand that runs `openshell ssh-proxy`. */
export async function sessionProxyCommand(
  ctx: CliContext,
  client: OpenShellClient,
  target: GatewayTarget,
  sandbox: Sandbox,
): Promise<string> {
  const session = await client.createSshSession({ sandboxId: sandbox.id });
  return shellCommandLine([
    ...ctx.selfCommand(),
    "ssh-proxy",
    "--gateway",
    connectUrl(session, target.endpoint),
    "--sandbox-id",
    sandbox.id,
    "--token",
    session.token,
    ...(target.name ? ["--gateway-name", target.name] : []),
  ]);
}

/** `ssh` argv for a sandbox: options, then `sandbox@sandbox`, then the remote command, if any. */
export function sshArgs(proxyCommand: string, extra: string[], remoteCommand?: string): string[] {
  return [
    ...SSH_BASE_OPTIONS.flatMap((option) => ["-o", option]),
    "-o",
    `ProxyCommand=${proxyCommand}`,
    ...extra,
    "sandbox@sandbox",
    ...(remoteCommand === undefined ? [] : [remoteCommand]),
  ];
}

/** OpenSSH's terminal flags: a forced PTY with the caller's TERM, or none. */
export function ttyArgs(tty: boolean): string[] {
  return tty
    ? ["-tt", "-o", "RequestTTY=force", "-o", `SetEnv=TERM=${process.env.TERM || "xterm-256color"}`]
    : ["-T", "-o", "RequestTTY=no"];
}

/**
 * The env request that makes the supervisor run an exec in a plain `bash --noprofile --norc -c`
 * (its login-environment.ts): nothing the sandbox user put in ~/.bash_profile, ~/.bashrc or
 * $BASH_ENV runs in, or writes into, a transfer's data stream. One SetEnv carries it: OpenSSH
 * takes only the first SetEnv option given.
 */
const NO_LOGIN_SHELL_OPTION = "SetEnv=OPENSHELL_NO_LOGIN_SHELL=1";

/**
 * Runs one command in the sandbox over ssh, stdio piped, without the user's login shell (what
 * upload, download and `create --upload` drive).
 */
export function sshRemoteRunner(proxyCommand: string): RemoteCommandRunner {
  return (remoteCommand) =>
    spawnSsh(sshArgs(proxyCommand, [...ttyArgs(false), "-o", NO_LOGIN_SHELL_OPTION], remoteCommand), {
      stdio: ["pipe", "pipe", "pipe"],
    });
}

export function spawnSsh(args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(process.env.OPENSHELL_SSH ?? "ssh", args, options);
  child.once("error", () => undefined);
  return child;
}

/**
 * Runs ssh attached to this terminal and resolves with its exit code. Ctrl-C goes to the remote
 * side through the PTY, so this process ignores SIGINT while ssh runs.
 */
export async function runSshAttached(args: string[]): Promise<number> {
  const ignore = () => undefined;
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(process.env.OPENSHELL_SSH ?? "ssh", args, { stdio: "inherit" });
      child.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          error.code === "ENOENT"
            ? new OpenShellError(
                "not_found",
                "OpenSSH's ssh client is not installed; install it (Debian: apt-get install openssh-client)",
              )
            : error,
        ),
      );
      child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 1;
}
