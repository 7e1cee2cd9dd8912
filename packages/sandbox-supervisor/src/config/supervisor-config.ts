import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { isLogLevel, OpenShellError } from "@openshell/core";

export const DEFAULT_SSH_SOCKET_PATH = "/run/openshell/ssh.sock";

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
  /** The workload to run (empty: none; the supervisor then runs until stopped). */
  command: string[];
}

export type ParsedSupervisorCommand =
  | { kind: "run"; config: SupervisorConfig }
  | { kind: "help" }
  | { kind: "version" };

export const SUPERVISOR_USAGE = `Usage: openshell-sandbox [options] [-- COMMAND...]

The sandbox supervisor: dials out to the gateway (ConnectSupervisor), serves SSH on a Unix socket
and bridges the relays the gateway asks for. Runs as root inside the sandbox.

  --sandbox-id ID              sandbox id (required)                      [OPENSHELL_SANDBOX_ID]
  --sandbox NAME               sandbox name (required)                    [OPENSHELL_SANDBOX]
  --openshell-endpoint URL     gateway URL, http:// or https:// (required) [OPENSHELL_ENDPOINT]
  --supervisor-token TOKEN     credential issued by the gateway (required) [OPENSHELL_SUPERVISOR_TOKEN]
  --ssh-socket-path PATH       SSH Unix socket (default ${DEFAULT_SSH_SOCKET_PATH}) [OPENSHELL_SSH_SOCKET_PATH]
  --run-as-user NAME           user for shells and commands (default sandbox) [OPENSHELL_RUN_AS_USER]
  -w, --workdir DIR            working directory (default /sandbox)
  --log-level LEVEL            trace|debug|info|warn|error (default info) [OPENSHELL_LOG_LEVEL]
  https endpoints also need     OPENSHELL_TLS_CA, OPENSHELL_TLS_CERT, OPENSHELL_TLS_KEY (files)
  -h, --help                   this help
  --version                    print the version
`;

/** Parses flags and env (flags win); every problem is reported with the flag or variable to fix. */
export function parseSupervisorCommand(argv: string[], env: NodeJS.ProcessEnv): ParsedSupervisorCommand {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new OpenShellError("config_invalid", `${(error as Error).message}\n\n${SUPERVISOR_USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const problems: string[] = [];
  const required = (flag: string, value: string | undefined, variable: string): string => {
    if (!value) problems.push(`--${flag} (or ${variable}) is required`);
    return value ?? "";
  };
  const sandboxId = required(
    "sandbox-id",
    values["sandbox-id"] ?? env.OPENSHELL_SANDBOX_ID,
    "OPENSHELL_SANDBOX_ID",
  );
  const sandboxName = required("sandbox", values.sandbox ?? env.OPENSHELL_SANDBOX, "OPENSHELL_SANDBOX");
  const endpointText = required(
    "openshell-endpoint",
    values["openshell-endpoint"] ?? env.OPENSHELL_ENDPOINT,
    "OPENSHELL_ENDPOINT",
  );
  const supervisorToken = required(
    "supervisor-token",
    values["supervisor-token"] ?? env.OPENSHELL_SUPERVISOR_TOKEN,
    "OPENSHELL_SUPERVISOR_TOKEN",
  );
  const logLevel = values["log-level"] ?? env.OPENSHELL_LOG_LEVEL ?? "info";
  if (!isLogLevel(logLevel))
    problems.push(`--log-level '${logLevel}' is not one of trace, debug, info, warn, error`);

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
    const files = { ca: env.OPENSHELL_TLS_CA, cert: env.OPENSHELL_TLS_CERT, key: env.OPENSHELL_TLS_KEY };
    for (const [name, path] of Object.entries(files)) {
      const variable = `OPENSHELL_TLS_${name.toUpperCase()}`;
      if (!path) problems.push(`${variable} is required for an https:// endpoint`);
      else if (!existsSync(path)) problems.push(`${variable} file '${path}' does not exist`);
    }
    if (files.ca && files.cert && files.key) tls = { ca: files.ca, cert: files.cert, key: files.key };
  }
  const keepalive = {
    intervalMs: positiveInt(
      env.OPENSHELL_KEEPALIVE_INTERVAL_MS,
      10_000,
      "OPENSHELL_KEEPALIVE_INTERVAL_MS",
      problems,
    ),
    timeoutMs: positiveInt(
      env.OPENSHELL_KEEPALIVE_TIMEOUT_MS,
      20_000,
      "OPENSHELL_KEEPALIVE_TIMEOUT_MS",
      problems,
    ),
  };
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
      sshSocketPath: values["ssh-socket-path"] ?? env.OPENSHELL_SSH_SOCKET_PATH ?? DEFAULT_SSH_SOCKET_PATH,
      runAsUser: values["run-as-user"] ?? env.OPENSHELL_RUN_AS_USER ?? "sandbox",
      workdir: values.workdir ?? "/sandbox",
      logLevel,
      tls,
      keepalive,
      command: positionals,
    },
  };
}

function positiveInt(raw: string | undefined, fallback: number, name: string, problems: string[]): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    problems.push(`${name} must be a positive integer (milliseconds), got '${raw}'`);
    return fallback;
  }
  return value;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      "sandbox-id": { type: "string" },
      sandbox: { type: "string" },
      "openshell-endpoint": { type: "string" },
      "supervisor-token": { type: "string" },
      "ssh-socket-path": { type: "string" },
      "run-as-user": { type: "string" },
      workdir: { type: "string", short: "w" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
    },
  });
}
