import { existsSync } from "node:fs";
import {
  type FlagTable,
  flagHelp,
  LOG_LEVELS,
  OpenShellError,
  parseFlags,
  SUPERVISOR_EXIT,
} from "@openshell/core";
import { DEFAULT_LAUNCHER_PATH } from "../confinement/child-confiner.js";

export const DEFAULT_SSH_SOCKET_PATH = "/run/openshell/ssh.sock";
/** Upstream's default workload; the drivers set a long-running one (`sleep infinity`). */
const DEFAULT_WORKLOAD = ["/bin/bash"];

export interface SupervisorTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface SupervisorConfig {
  sandboxId: string;
  sandboxName: string;
  endpoint: URL;
  supervisorToken: string;
  sshSocketPath: string;
  runAsUser: string;
  workdir: string;
  logLevel: string;
  tls: SupervisorTlsFiles | undefined;
  /** HTTP/2 keepalive towards the gateway (OPENSHELL_KEEPALIVE_INTERVAL_MS / _TIMEOUT_MS tune it). */
  keepalive: { intervalMs: number; timeoutMs: number };
  /**
   * The entrypoint workload (§3.1): the arguments after `--`, else OPENSHELL_SANDBOX_COMMAND split
   * on whitespace, else `/bin/bash`. The supervisor exits when it exits, with its exit code.
   */
  command: string[];
  /** Seconds the workload may run (0: no limit); then it is killed and the supervisor exits 124. */
  timeoutSecs: number;
  /** The workload keeps the supervisor's stdin (else it reads /dev/null). */
  interactive: boolean;
  /** Fallback poll of GetSandboxConfig (changes are pushed on the session). */
  policyPollIntervalSecs: number;
  /** Where `etc/openshell/policy.yaml` (else `etc/navigator/policy.yaml`) is looked for. */
  policyDiscoveryRoot: string;
  /** The native launcher every child starts through (identity, Landlock, seccomp, netns). */
  launcherPath: string;
  /** Where the OCSF JSONL files go while `ocsf_json_enabled` is on (`openshell-ocsf.<date>.log`). */
  ocsfLogDir: string;
  /**
   * TEST-ONLY: children run unconfined (no launcher, no network namespace). Only the host-process
   * test driver sets it; without it the supervisor never starts a child it cannot confine.
   */
  testOnlyNoIsolation: boolean;
}

export type ParsedSupervisorCommand =
  | { kind: "run"; config: SupervisorConfig }
  | { kind: "help" }
  | { kind: "version" };

/** Every setting of openshell-sandbox, with its env var (flags win). */
export const SUPERVISOR_FLAGS = {
  "sandbox-id": {
    type: "string",
    env: "OPENSHELL_SANDBOX_ID",
    arg: "ID",
    description: "sandbox id (required)",
  },
  sandbox: { type: "string", env: "OPENSHELL_SANDBOX", arg: "NAME", description: "sandbox name (required)" },
  "openshell-endpoint": {
    type: "string",
    env: "OPENSHELL_ENDPOINT",
    arg: "URL",
    description: "gateway URL, http:// or https:// (required)",
  },
  "supervisor-token": {
    type: "string",
    env: "OPENSHELL_SUPERVISOR_TOKEN",
    arg: "TOKEN",
    description: "credential issued by the gateway (required)",
  },
  "ssh-socket-path": {
    type: "string",
    env: "OPENSHELL_SSH_SOCKET_PATH",
    default: DEFAULT_SSH_SOCKET_PATH,
    arg: "PATH",
    description: "SSH Unix socket",
  },
  "run-as-user": {
    type: "string",
    env: "OPENSHELL_RUN_AS_USER",
    default: "sandbox",
    arg: "NAME",
    description: "user for shells and commands",
  },
  workdir: {
    type: "string",
    short: "w",
    default: "/sandbox",
    arg: "DIR",
    description: "working directory of the workload, shells and commands",
  },
  timeout: {
    type: "int",
    short: "t",
    default: 0,
    min: 0,
    arg: "SECS",
    description: `kill the workload after SECS seconds and exit ${SUPERVISOR_EXIT.workloadTimeout} (0: no limit)`,
  },
  interactive: {
    type: "boolean",
    short: "i",
    description: "the workload reads the supervisor's stdin (else /dev/null)",
  },
  "sandbox-command": {
    type: "string",
    env: "OPENSHELL_SANDBOX_COMMAND",
    envOnly: true,
    description: `the workload when no COMMAND follows --, split on whitespace (default ${DEFAULT_WORKLOAD.join(" ")})`,
  },
  "log-level": {
    type: "enum",
    env: "OPENSHELL_LOG_LEVEL",
    default: "info",
    values: LOG_LEVELS,
    arg: "LEVEL",
    description: "log level",
  },
  "policy-poll-interval-secs": {
    type: "int",
    env: "OPENSHELL_POLICY_POLL_INTERVAL_SECS",
    default: 60,
    min: 1,
    arg: "SECS",
    description: "fallback poll of the sandbox's policy and settings (changes are pushed on the session)",
  },
  "policy-discovery-root": {
    type: "string",
    env: "OPENSHELL_POLICY_DISCOVERY_ROOT",
    default: "/",
    arg: "DIR",
    description:
      "where etc/openshell/policy.yaml (else etc/navigator/policy.yaml) is looked for when the gateway has no policy",
  },
  launcher: {
    type: "string",
    env: "OPENSHELL_LAUNCHER",
    default: DEFAULT_LAUNCHER_PATH,
    arg: "PATH",
    description:
      "native launcher that confines every child (identity, Landlock, seccomp, network namespace); the supervisor exits at start when it cannot",
  },
  "ocsf-log-dir": {
    type: "string",
    env: "OPENSHELL_OCSF_LOG_DIR",
    default: "/var/log",
    arg: "DIR",
    description:
      "where OCSF events are appended as JSONL (openshell-ocsf.<date>.log, daily, 3 kept) while the ocsf_json_enabled setting is on",
  },
  "test-only-no-isolation": {
    type: "boolean",
    env: "OPENSHELL_TEST_ONLY_NO_ISOLATION",
    description:
      "TEST ONLY: start children without confinement or network isolation (host-process test driver); never in a real sandbox",
  },
  help: { type: "boolean", short: "h", description: "this help" },
  version: { type: "boolean", description: "print the version" },
  "tls-ca": {
    type: "string",
    env: "OPENSHELL_TLS_CA",
    envOnly: true,
    description: "CA file (https endpoints)",
  },
  "tls-cert": {
    type: "string",
    env: "OPENSHELL_TLS_CERT",
    envOnly: true,
    description: "client certificate file (https endpoints)",
  },
  "tls-key": {
    type: "string",
    env: "OPENSHELL_TLS_KEY",
    envOnly: true,
    description: "client key file (https endpoints)",
  },
  "keepalive-interval-ms": {
    type: "int",
    env: "OPENSHELL_KEEPALIVE_INTERVAL_MS",
    envOnly: true,
    default: 10_000,
    min: 1,
    description: "HTTP/2 ping interval towards the gateway",
  },
  "keepalive-timeout-ms": {
    type: "int",
    env: "OPENSHELL_KEEPALIVE_TIMEOUT_MS",
    envOnly: true,
    default: 20_000,
    min: 1,
    description: "HTTP/2 ping timeout",
  },
} as const satisfies FlagTable;

/** `openshell-sandbox --help`, generated from SUPERVISOR_FLAGS. */
export const supervisorUsage = (): string =>
  flagHelp(SUPERVISOR_FLAGS, {
    usage: "openshell-sandbox [options] [-- COMMAND...]",
    description:
      "The sandbox supervisor: dials out to the gateway (ConnectSupervisor), serves SSH on a Unix socket,\nbridges the relays the gateway asks for and runs the sandbox's workload COMMAND, confined; it exits\nwith the workload's exit code. Runs as root inside the sandbox.",
  });

/** Parses flags and env (flags win); every problem is reported with the flag or variable to fix. */
export function parseSupervisorCommand(argv: string[], env: NodeJS.ProcessEnv): ParsedSupervisorCommand {
  const { values, positionals } = parseFlags(SUPERVISOR_FLAGS, argv, env, {
    binary: "openshell-sandbox",
    allowPositionals: true,
  });
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const problems: string[] = [];
  const required = (flag: "sandbox-id" | "sandbox" | "openshell-endpoint" | "supervisor-token"): string => {
    const value = values[flag];
    if (!value) problems.push(`--${flag} (or ${SUPERVISOR_FLAGS[flag].env}) is required`);
    return value ?? "";
  };
  const sandboxId = required("sandbox-id");
  const sandboxName = required("sandbox");
  const endpointText = required("openshell-endpoint");
  const supervisorToken = required("supervisor-token");

  let endpoint: URL | undefined;
  if (endpointText) {
    try {
      endpoint = new URL(endpointText);
      if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
        problems.push(`OPENSHELL_ENDPOINT '${endpointText}' must start with http:// or https://`);
      }
    } catch {
      problems.push(`OPENSHELL_ENDPOINT '${endpointText}' is not a URL (expected e.g. http://10.0.2.2:8080)`);
    }
  }
  let tls: SupervisorTlsFiles | undefined;
  if (endpoint?.protocol === "https:") {
    const files = { ca: values["tls-ca"], cert: values["tls-cert"], key: values["tls-key"] };
    for (const [name, path] of Object.entries(files)) {
      const variable = `OPENSHELL_TLS_${name.toUpperCase()}`;
      if (!path) problems.push(`${variable} is required for an https:// endpoint`);
      else if (!existsSync(path)) problems.push(`${variable} file '${path}' does not exist`);
    }
    if (files.ca && files.cert && files.key) tls = { ca: files.ca, cert: files.cert, key: files.key };
  }
  if (problems.length > 0 || !endpoint) {
    throw new OpenShellError(
      "config_invalid",
      `openshell-sandbox cannot start:\n  - ${problems.join("\n  - ")}`,
    );
  }
  return {
    kind: "run",
    config: {
      sandboxId,
      sandboxName,
      endpoint,
      supervisorToken,
      sshSocketPath: values["ssh-socket-path"],
      runAsUser: values["run-as-user"],
      workdir: values.workdir,
      logLevel: values["log-level"],
      tls,
      keepalive: { intervalMs: values["keepalive-interval-ms"], timeoutMs: values["keepalive-timeout-ms"] },
      command: workloadCommand(positionals, values["sandbox-command"]),
      timeoutSecs: values.timeout,
      interactive: values.interactive,
      policyPollIntervalSecs: values["policy-poll-interval-secs"],
      policyDiscoveryRoot: values["policy-discovery-root"],
      launcherPath: values.launcher,
      ocsfLogDir: values["ocsf-log-dir"],
      testOnlyNoIsolation: values["test-only-no-isolation"],
    },
  };
}

/** The arguments after `--`, else OPENSHELL_SANDBOX_COMMAND split on whitespace, else the default. */
function workloadCommand(positionals: string[], fromEnv: string | undefined): string[] {
  if (positionals.length > 0) return positionals;
  const words = fromEnv?.split(/\s+/).filter(Boolean) ?? [];
  return words.length > 0 ? words : [...DEFAULT_WORKLOAD];
}
