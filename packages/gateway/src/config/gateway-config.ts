import { homedir } from "node:os";
import { join } from "node:path";
import {
  type FlagTable,
  type FlagValues,
  flagHelp,
  LOG_LEVELS,
  OpenShellError,
  parseFlags,
} from "@openshell/core";

const SUPPORTED_DRIVERS = ["docker", "kubernetes", "vm", "test"] as const;
const NOT_YET_IMPLEMENTED_DRIVERS = ["podman"];

export interface TlsFiles {
  cert: string;
  key: string;
  /** Client CA; undefined when --disable-gateway-auth (TLS without client certificates). */
  clientCa: string | undefined;
}

export interface GatewayConfig {
  port: number;
  bindAddress: string;
  healthPort: number;
  logLevel: string;
  dbUrl: string;
  tls: TlsFiles | undefined;
  driver: string;
  driverDir: string | undefined;
  driverStateDir: string;
  sandboxNamespace: string;
  sandboxImage: string | undefined;
  sandboxImagePullPolicy: string | undefined;
  /** Secret with the supervisors' client TLS files, mounted into sandbox pods (kubernetes driver). */
  clientTlsSecretName: string | undefined;
  grpcEndpoint: string | undefined;
  sshGatewayHost: string;
  sshGatewayPort: number;
  sshConnectPath: string;
  vm: { vcpus: number; memMib: number; tls: { ca: string; cert: string; key: string } | undefined };
  timings: RuntimeTimings;
}

/** Intervals of the compute runtime; tunable through env for tests, upstream's values by default. */
interface RuntimeTimings {
  reconcileIntervalMs: number;
  orphanGraceMs: number;
  watchRetryMs: number;
  driverReadyTimeoutMs: number;
  driverRestartMaxBackoffMs: number;
  drainTimeoutMs: number;
}

const ms = (env: string, value: number, description: string) =>
  ({ type: "int", env, envOnly: true, default: value, min: 0, description }) as const;

/** Every flag of openshell-gateway, with its env var (flags win). Names follow upstream's gateway. */
export const GATEWAY_FLAGS = {
  "db-url": {
    type: "string",
    env: "OPENSHELL_DB_URL",
    arg: "URL",
    group: "Required",
    description: "sqlite:PATH or sqlite::memory:",
  },
  port: {
    type: "int",
    env: "OPENSHELL_SERVER_PORT",
    default: 8080,
    min: 1,
    max: 65535,
    unit: "port",
    group: "Listening",
    description: "API port",
  },
  "bind-address": {
    type: "string",
    env: "OPENSHELL_BIND_ADDRESS",
    default: "0.0.0.0",
    arg: "ADDR",
    group: "Listening",
    description: "address to bind",
  },
  "health-port": {
    type: "int",
    env: "OPENSHELL_HEALTH_PORT",
    default: 0,
    min: 0,
    max: 65535,
    unit: "port",
    group: "Listening",
    description: "extra plain-HTTP health port, 0 = off",
  },
  "disable-tls": {
    type: "boolean",
    env: "OPENSHELL_DISABLE_TLS",
    group: "Listening",
    description: "plaintext: h2c + HTTP/1.1 on one port",
  },
  "tls-cert": {
    type: "string",
    env: "OPENSHELL_TLS_CERT",
    arg: "FILE",
    group: "Listening",
    description: "server certificate (TLS with ALPN h2/http1.1)",
  },
  "tls-key": {
    type: "string",
    env: "OPENSHELL_TLS_KEY",
    arg: "FILE",
    group: "Listening",
    description: "server key",
  },
  "tls-client-ca": {
    type: "string",
    env: "OPENSHELL_TLS_CLIENT_CA",
    arg: "FILE",
    group: "Listening",
    description: "CA of client certificates (mTLS, the default)",
  },
  "disable-gateway-auth": {
    type: "boolean",
    env: "OPENSHELL_DISABLE_GATEWAY_AUTH",
    group: "Listening",
    description: "TLS without client certificates",
  },
  drivers: {
    type: "list",
    env: "OPENSHELL_DRIVERS",
    default: ["vm"],
    arg: "NAME",
    group: "Compute",
    description: "compute driver: vm | docker | kubernetes",
  },
  driver: { type: "string", arg: "NAME", group: "Compute", description: "same as --drivers" },
  "driver-dir": {
    type: "string",
    env: "OPENSHELL_DRIVER_DIR",
    arg: "DIR",
    group: "Compute",
    description: "where openshell-driver-<name> is looked up first",
  },
  "driver-state-dir": {
    type: "string",
    env: "OPENSHELL_DRIVER_STATE_DIR",
    arg: "DIR",
    group: "Compute",
    description: "driver state (default ~/.local/state/openshell/drivers/<name>)",
  },
  "vm-driver-state-dir": {
    type: "string",
    env: "OPENSHELL_VM_DRIVER_STATE_DIR",
    arg: "DIR",
    group: "Compute",
    description: "state of the vm driver",
  },
  "vm-vcpus": {
    type: "int",
    env: "OPENSHELL_VM_DRIVER_VCPUS",
    default: 2,
    min: 1,
    group: "Compute",
    description: "vCPUs per VM",
  },
  "vm-mem-mib": {
    type: "int",
    env: "OPENSHELL_VM_DRIVER_MEM_MIB",
    default: 2048,
    min: 1,
    group: "Compute",
    description: "memory per VM in MiB",
  },
  "vm-tls-ca": {
    type: "string",
    env: "OPENSHELL_VM_TLS_CA",
    arg: "FILE",
    group: "Compute",
    description: "guest CA when --grpc-endpoint is https://",
  },
  "vm-tls-cert": {
    type: "string",
    env: "OPENSHELL_VM_TLS_CERT",
    arg: "FILE",
    group: "Compute",
    description: "guest client certificate when --grpc-endpoint is https://",
  },
  "vm-tls-key": {
    type: "string",
    env: "OPENSHELL_VM_TLS_KEY",
    arg: "FILE",
    group: "Compute",
    description: "guest client key when --grpc-endpoint is https://",
  },
  "grpc-endpoint": {
    type: "string",
    env: "OPENSHELL_GRPC_ENDPOINT",
    arg: "URL",
    group: "Compute",
    description: "URL sandboxes dial back (required for vm)",
  },
  "sandbox-namespace": {
    type: "string",
    env: "OPENSHELL_SANDBOX_NAMESPACE",
    default: "default",
    arg: "NAME",
    group: "Compute",
    description: "namespace recorded on sandboxes",
  },
  "sandbox-image": {
    type: "string",
    env: "OPENSHELL_SANDBOX_IMAGE",
    arg: "IMAGE",
    group: "Compute",
    description: "default sandbox image for the kubernetes and docker drivers",
  },
  "sandbox-image-pull-policy": {
    type: "string",
    env: "OPENSHELL_SANDBOX_IMAGE_PULL_POLICY",
    arg: "POLICY",
    group: "Compute",
    description: "image pull policy for the kubernetes driver",
  },
  "ssh-gateway-host": {
    type: "string",
    env: "OPENSHELL_SSH_GATEWAY_HOST",
    default: "127.0.0.1",
    arg: "HOST",
    group: "SSH",
    description: "host returned by CreateSshSession",
  },
  "ssh-gateway-port": {
    type: "int",
    env: "OPENSHELL_SSH_GATEWAY_PORT",
    default: 0,
    min: 0,
    max: 65535,
    unit: "port",
    group: "SSH",
    description: "port returned by CreateSshSession (0 = --port)",
  },
  "ssh-connect-path": {
    type: "string",
    env: "OPENSHELL_SSH_CONNECT_PATH",
    default: "/connect/ssh",
    arg: "PATH",
    group: "SSH",
    description: "path of the SSH CONNECT tunnel",
  },
  // Upstream's flags that this gateway accepts (so upstream command lines start) and does not use.
  "ssh-handshake-secret": {
    type: "string",
    env: "OPENSHELL_SSH_HANDSHAKE_SECRET",
    arg: "S",
    group: "Accepted for compatibility, unused",
    description: "the relay path needs no handshake secret",
  },
  "ssh-handshake-skew-secs": {
    type: "int",
    env: "OPENSHELL_SSH_HANDSHAKE_SKEW_SECS",
    default: 300,
    min: 0,
    group: "Accepted for compatibility, unused",
    description: "allowed clock skew of the handshake",
  },
  "client-tls-secret-name": {
    type: "string",
    env: "OPENSHELL_CLIENT_TLS_SECRET_NAME",
    arg: "NAME",
    group: "Compute",
    description: "Secret with ca.crt, tls.crt, tls.key mounted into sandbox pods (kubernetes driver)",
  },
  "host-gateway-ip": {
    type: "string",
    env: "OPENSHELL_HOST_GATEWAY_IP",
    arg: "IP",
    group: "Accepted for compatibility, unused",
    description: "host address seen from sandboxes",
  },
  "log-level": {
    type: "enum",
    env: "OPENSHELL_LOG_LEVEL",
    default: "info",
    values: LOG_LEVELS,
    arg: "LEVEL",
    group: "Other",
    description: "log level",
  },
  help: { type: "boolean", short: "h", group: "Other", description: "this text" },
  version: { type: "boolean", short: "V", group: "Other", description: "print the version" },
  "reconcile-interval-ms": ms(
    "OPENSHELL_RECONCILE_INTERVAL_MS",
    60_000,
    "how often sandboxes are reconciled",
  ),
  "orphan-grace-ms": ms(
    "OPENSHELL_ORPHAN_GRACE_MS",
    300_000,
    "age before an unknown driver sandbox is removed",
  ),
  "watch-retry-ms": ms("OPENSHELL_WATCH_RETRY_MS", 2_000, "delay before re-opening the driver watch"),
  "driver-ready-timeout-ms": ms(
    "OPENSHELL_DRIVER_READY_TIMEOUT_MS",
    10_000,
    "how long a driver has to start",
  ),
  "driver-restart-max-backoff-ms": ms(
    "OPENSHELL_DRIVER_RESTART_MAX_BACKOFF_MS",
    30_000,
    "longest wait between driver restarts",
  ),
  "drain-timeout-ms": ms("OPENSHELL_DRAIN_TIMEOUT_MS", 5_000, "how long connections get at shutdown"),
} as const satisfies FlagTable;

/** `openshell-gateway --help`, generated from GATEWAY_FLAGS. */
export const gatewayUsage = (): string =>
  flagHelp(GATEWAY_FLAGS, {
    usage: "openshell-gateway --db-url URL [options]",
    description:
      "The OpenShell control plane: gRPC, Connect and gRPC-web API, /connect/ssh and health on one port.",
  });

export type ParsedCommand = { kind: "help" } | { kind: "version" } | { kind: "run"; config: GatewayConfig };

const fail = (message: string): never => {
  throw new OpenShellError("config_invalid", message);
};

/** Parses argv + env into a validated config; throws OpenShellError(config_invalid) naming the fix. */
export function parseGatewayCommand(argv: string[], env: NodeJS.ProcessEnv): ParsedCommand {
  const { values, sources } = parseFlags(GATEWAY_FLAGS, argv, env, { binary: "openshell-gateway" });
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const port = values.port;
  const healthPort = values["health-port"];
  if (healthPort !== 0 && healthPort === port) {
    fail(`--port and --health-port must be different (both set to ${port})`);
  }
  const dbUrl = values["db-url"];
  if (!dbUrl) {
    return fail(
      "--db-url is required (or OPENSHELL_DB_URL), e.g. --db-url sqlite:/var/lib/openshell/gateway.db or sqlite::memory:",
    );
  }
  const tls = parseTls(values);
  if (sources.drivers === "flag" && values.driver)
    fail("--drivers and --driver are the same flag; give it once");
  const driver = parseDriver(
    sources.drivers === "flag" || values.driver === undefined ? values.drivers : [values.driver],
  );
  const driverStateDir =
    (driver === "vm" ? values["vm-driver-state-dir"] : undefined) ??
    values["driver-state-dir"] ??
    join(defaultStateRoot(env), "drivers", driver);
  const grpcEndpoint = values["grpc-endpoint"];
  if (grpcEndpoint !== undefined) validateEndpoint(grpcEndpoint);
  if ((driver === "vm" || driver === "docker") && !grpcEndpoint) {
    fail(
      `--grpc-endpoint is required when using the ${driver} compute driver (the URL sandboxes dial back, e.g. http://127.0.0.1:8080)`,
    );
  }
  const sshConnectPath = values["ssh-connect-path"];
  if (!sshConnectPath.startsWith("/")) fail(`--ssh-connect-path '${sshConnectPath}' must start with '/'`);
  const sshGatewayPort = values["ssh-gateway-port"];

  return {
    kind: "run",
    config: {
      port,
      bindAddress: values["bind-address"],
      healthPort,
      logLevel: values["log-level"],
      dbUrl,
      tls,
      driver,
      driverDir: values["driver-dir"],
      driverStateDir,
      sandboxNamespace: values["sandbox-namespace"],
      sandboxImage: values["sandbox-image"],
      sandboxImagePullPolicy: values["sandbox-image-pull-policy"],
      clientTlsSecretName: values["client-tls-secret-name"],
      grpcEndpoint,
      sshGatewayHost: values["ssh-gateway-host"],
      sshGatewayPort: sshGatewayPort === 0 ? port : sshGatewayPort,
      sshConnectPath,
      vm: {
        vcpus: values["vm-vcpus"],
        memMib: values["vm-mem-mib"],
        tls: parseVmTls(values, driver, grpcEndpoint),
      },
      timings: {
        reconcileIntervalMs: values["reconcile-interval-ms"],
        orphanGraceMs: values["orphan-grace-ms"],
        watchRetryMs: values["watch-retry-ms"],
        driverReadyTimeoutMs: values["driver-ready-timeout-ms"],
        driverRestartMaxBackoffMs: values["driver-restart-max-backoff-ms"],
        drainTimeoutMs: values["drain-timeout-ms"],
      },
    },
  };
}

type GatewayValues = FlagValues<typeof GATEWAY_FLAGS>;

function parseTls(values: GatewayValues): TlsFiles | undefined {
  const disableAuth = values["disable-gateway-auth"];
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  const clientCa = values["tls-client-ca"];
  if (values["disable-tls"]) {
    const given = [cert && "--tls-cert", key && "--tls-key", clientCa && "--tls-client-ca"].filter(Boolean);
    if (given.length > 0) {
      fail(
        `${given.join(", ")} conflict${given.length === 1 ? "s" : ""} with --disable-tls; drop either the TLS files or --disable-tls`,
      );
    }
    if (disableAuth)
      fail(
        "--disable-gateway-auth has no effect with --disable-tls (there is no TLS to authenticate); drop one of them",
      );
    return undefined;
  }
  if (!cert) return fail("--tls-cert is required when TLS is enabled (use --disable-tls to skip)");
  if (!key) return fail("--tls-key is required when TLS is enabled (use --disable-tls to skip)");
  if (!disableAuth && !clientCa) {
    fail(
      "--tls-client-ca is required for mTLS (use --disable-gateway-auth for TLS without client certificates, or --disable-tls)",
    );
  }
  if (disableAuth && clientCa)
    fail("--tls-client-ca conflicts with --disable-gateway-auth; drop one of them");
  return { cert, key, clientCa: disableAuth ? undefined : clientCa };
}

function parseDriver(given: string[]): string {
  const names = given.map((n) => n.trim().toLowerCase()).filter(Boolean);
  if (names.length === 0) fail("--drivers is empty; choose one of: docker, kubernetes, vm");
  for (const name of names) {
    if (NOT_YET_IMPLEMENTED_DRIVERS.includes(name)) fail(`compute driver '${name}' is not implemented yet`);
    if (!(SUPPORTED_DRIVERS as readonly string[]).includes(name)) {
      fail(
        `unsupported compute driver '${name}'. expected one of: docker, kubernetes, vm (test is a test-only driver)`,
      );
    }
  }
  if (names.length > 1)
    fail(`multiple compute drivers are not supported yet; configured drivers: ${names.join(",")}`);
  return names[0] as string;
}

function validateEndpoint(endpoint: string): void {
  const url = URL.canParse(endpoint) ? new URL(endpoint) : undefined;
  if (!url) {
    fail(`--grpc-endpoint '${endpoint}' is not a URL; use e.g. http://127.0.0.1:8080`);
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    fail(`--grpc-endpoint '${endpoint}' must use http:// or https://`);
  }
}

function parseVmTls(
  values: GatewayValues,
  driver: string,
  grpcEndpoint: string | undefined,
): GatewayConfig["vm"]["tls"] {
  const ca = values["vm-tls-ca"];
  const cert = values["vm-tls-cert"];
  const key = values["vm-tls-key"];
  if ((driver === "vm" || driver === "docker") && grpcEndpoint?.startsWith("https://")) {
    if (!ca || !cert || !key) {
      return fail(
        `--vm-tls-ca, --vm-tls-cert and --vm-tls-key are all required when --grpc-endpoint is https:// and the driver is ${driver} (the files the sandboxes' supervisors use)`,
      );
    }
    return { ca, cert, key };
  }
  return undefined;
}

function defaultStateRoot(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(base, "openshell");
}
