import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isLogLevel, OpenShellError } from "@openshell/core";

export const SUPPORTED_DRIVERS = ["kubernetes", "vm", "test"] as const;
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
  grpcEndpoint: string | undefined;
  sshGatewayHost: string;
  sshGatewayPort: number;
  sshConnectPath: string;
  sshHandshakeSecret: string | undefined;
  sshHandshakeSkewSecs: number;
  clientTlsSecretName: string | undefined;
  hostGatewayIp: string | undefined;
  vm: { vcpus: number; memMib: number; tls: { ca: string; cert: string; key: string } | undefined };
  timings: RuntimeTimings;
}

/** Intervals of the compute runtime; tunable through env for tests, upstream's values by default. */
export interface RuntimeTimings {
  reconcileIntervalMs: number;
  orphanGraceMs: number;
  watchRetryMs: number;
  driverReadyTimeoutMs: number;
  driverRestartMaxBackoffMs: number;
  drainTimeoutMs: number;
}

type FlagSpec = { type: "string" | "boolean"; env?: string; short?: string };

/** Every flag, with the env var that may set it (flags win). Names follow upstream's gateway. */
const FLAGS: Record<string, FlagSpec> = {
  port: { type: "string", env: "OPENSHELL_SERVER_PORT" },
  "bind-address": { type: "string", env: "OPENSHELL_BIND_ADDRESS" },
  "health-port": { type: "string", env: "OPENSHELL_HEALTH_PORT" },
  "log-level": { type: "string", env: "OPENSHELL_LOG_LEVEL" },
  "tls-cert": { type: "string", env: "OPENSHELL_TLS_CERT" },
  "tls-key": { type: "string", env: "OPENSHELL_TLS_KEY" },
  "tls-client-ca": { type: "string", env: "OPENSHELL_TLS_CLIENT_CA" },
  "db-url": { type: "string", env: "OPENSHELL_DB_URL" },
  drivers: { type: "string", env: "OPENSHELL_DRIVERS" },
  driver: { type: "string" },
  "driver-dir": { type: "string", env: "OPENSHELL_DRIVER_DIR" },
  "driver-state-dir": { type: "string", env: "OPENSHELL_DRIVER_STATE_DIR" },
  "sandbox-namespace": { type: "string", env: "OPENSHELL_SANDBOX_NAMESPACE" },
  "sandbox-image": { type: "string", env: "OPENSHELL_SANDBOX_IMAGE" },
  "sandbox-image-pull-policy": { type: "string", env: "OPENSHELL_SANDBOX_IMAGE_PULL_POLICY" },
  "grpc-endpoint": { type: "string", env: "OPENSHELL_GRPC_ENDPOINT" },
  "ssh-gateway-host": { type: "string", env: "OPENSHELL_SSH_GATEWAY_HOST" },
  "ssh-gateway-port": { type: "string", env: "OPENSHELL_SSH_GATEWAY_PORT" },
  "ssh-connect-path": { type: "string", env: "OPENSHELL_SSH_CONNECT_PATH" },
  "ssh-handshake-secret": { type: "string", env: "OPENSHELL_SSH_HANDSHAKE_SECRET" },
  "ssh-handshake-skew-secs": { type: "string", env: "OPENSHELL_SSH_HANDSHAKE_SKEW_SECS" },
  "client-tls-secret-name": { type: "string", env: "OPENSHELL_CLIENT_TLS_SECRET_NAME" },
  "host-gateway-ip": { type: "string", env: "OPENSHELL_HOST_GATEWAY_IP" },
  "vm-driver-state-dir": { type: "string", env: "OPENSHELL_VM_DRIVER_STATE_DIR" },
  "vm-vcpus": { type: "string", env: "OPENSHELL_VM_DRIVER_VCPUS" },
  "vm-mem-mib": { type: "string", env: "OPENSHELL_VM_DRIVER_MEM_MIB" },
  "vm-tls-ca": { type: "string", env: "OPENSHELL_VM_TLS_CA" },
  "vm-tls-cert": { type: "string", env: "OPENSHELL_VM_TLS_CERT" },
  "vm-tls-key": { type: "string", env: "OPENSHELL_VM_TLS_KEY" },
  "disable-tls": { type: "boolean", env: "OPENSHELL_DISABLE_TLS" },
  "disable-gateway-auth": { type: "boolean", env: "OPENSHELL_DISABLE_GATEWAY_AUTH" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
};

export type ParsedCommand = { kind: "help" } | { kind: "version" } | { kind: "run"; config: GatewayConfig };

const fail = (message: string): never => {
  throw new OpenShellError("config_invalid", message);
};

/** Parses argv + env into a validated config; throws OpenShellError(config_invalid) naming the fix. */
export function parseGatewayCommand(argv: string[], env: NodeJS.ProcessEnv): ParsedCommand {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, spec] of Object.entries(FLAGS)) {
    options[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return fail(`${message.split("\n")[0]}. Run 'openshell-gateway --help' for the list of flags.`);
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const get = (name: string): string | undefined => {
    const flag = values[name];
    if (typeof flag === "string") return flag;
    const envName = FLAGS[name]?.env;
    const fromEnv = envName ? env[envName] : undefined;
    return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
  };
  const getBool = (name: string): boolean => {
    if (values[name] === true) return true;
    const envName = FLAGS[name]?.env;
    const raw = envName ? env[envName] : undefined;
    if (raw === undefined || raw === "") return false;
    if (/^(1|true|yes|y|on)$/i.test(raw)) return true;
    if (/^(0|false|no|n|off)$/i.test(raw)) return false;
    return fail(`${envName}='${raw}' is not a boolean; use true or false`);
  };

  const port = parsePort(get("port") ?? "8080", "--port", false);
  const healthPort = parsePort(get("health-port") ?? "0", "--health-port", true);
  if (healthPort !== 0 && healthPort === port) {
    fail(`--port and --health-port must be different (both set to ${port})`);
  }
  const logLevel = get("log-level") ?? "info";
  if (!isLogLevel(logLevel)) fail(`--log-level '${logLevel}' is not one of trace, debug, info, warn, error`);

  const dbUrl = get("db-url");
  if (!dbUrl) {
    fail(
      "--db-url is required (or OPENSHELL_DB_URL), e.g. --db-url sqlite:/var/lib/openshell/gateway.db or sqlite::memory:",
    );
  }

  const tls = parseTls(get, getBool);
  const driver = parseDriver(
    values.drivers as string | undefined,
    values.driver as string | undefined,
    get("drivers"),
  );
  const stateRoot = defaultStateRoot(env);
  const driverStateDir =
    (driver === "vm" ? get("vm-driver-state-dir") : undefined) ??
    get("driver-state-dir") ??
    join(stateRoot, "drivers", driver);
  const grpcEndpoint = get("grpc-endpoint");
  if (grpcEndpoint !== undefined) validateEndpoint(grpcEndpoint);
  if (driver === "vm" && !grpcEndpoint) {
    fail(
      "--grpc-endpoint is required when using the vm compute driver (the URL sandboxes dial back, e.g. http://127.0.0.1:8080)",
    );
  }
  const vmTls = parseVmTls(get, driver, grpcEndpoint);

  const sshConnectPath = get("ssh-connect-path") ?? "/connect/ssh";
  if (!sshConnectPath.startsWith("/")) fail(`--ssh-connect-path '${sshConnectPath}' must start with '/'`);
  const sshGatewayPort = parsePort(get("ssh-gateway-port") ?? "0", "--ssh-gateway-port", true);

  return {
    kind: "run",
    config: {
      port,
      bindAddress: get("bind-address") ?? "0.0.0.0",
      healthPort,
      logLevel,
      dbUrl: dbUrl as string,
      tls,
      driver,
      driverDir: get("driver-dir"),
      driverStateDir,
      sandboxNamespace: get("sandbox-namespace") ?? "default",
      sandboxImage: get("sandbox-image"),
      sandboxImagePullPolicy: get("sandbox-image-pull-policy"),
      grpcEndpoint,
      sshGatewayHost: get("ssh-gateway-host") ?? "127.0.0.1",
      sshGatewayPort: sshGatewayPort === 0 ? port : sshGatewayPort,
      sshConnectPath,
      sshHandshakeSecret: get("ssh-handshake-secret"),
      sshHandshakeSkewSecs: parseNonNegativeInt(
        get("ssh-handshake-skew-secs") ?? "300",
        "--ssh-handshake-skew-secs",
      ),
      clientTlsSecretName: get("client-tls-secret-name"),
      hostGatewayIp: get("host-gateway-ip"),
      vm: {
        vcpus: parsePositiveInt(get("vm-vcpus") ?? "2", "--vm-vcpus"),
        memMib: parsePositiveInt(get("vm-mem-mib") ?? "2048", "--vm-mem-mib"),
        tls: vmTls,
      },
      timings: parseTimings(env),
    },
  };
}

function parsePort(raw: string, flag: string, allowZero: boolean): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value > 65535 || (!allowZero && value === 0)) {
    fail(`${flag} '${raw}' is not a valid port (${allowZero ? "0" : "1"}-65535)`);
  }
  return value;
}

function parsePositiveInt(raw: string, flag: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1) fail(`${flag} '${raw}' must be a positive integer`);
  return value;
}

function parseNonNegativeInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw)) fail(`${flag} '${raw}' must be a non-negative integer`);
  return Number(raw);
}

function parseTls(
  get: (name: string) => string | undefined,
  getBool: (name: string) => boolean,
): TlsFiles | undefined {
  const disableTls = getBool("disable-tls");
  const disableAuth = getBool("disable-gateway-auth");
  const cert = get("tls-cert");
  const key = get("tls-key");
  const clientCa = get("tls-client-ca");
  if (disableTls) {
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
  if (!cert) fail("--tls-cert is required when TLS is enabled (use --disable-tls to skip)");
  if (!key) fail("--tls-key is required when TLS is enabled (use --disable-tls to skip)");
  if (!disableAuth && !clientCa) {
    fail(
      "--tls-client-ca is required for mTLS (use --disable-gateway-auth for TLS without client certificates, or --disable-tls)",
    );
  }
  if (disableAuth && clientCa)
    fail("--tls-client-ca conflicts with --disable-gateway-auth; drop one of them");
  return { cert: cert as string, key: key as string, clientCa: disableAuth ? undefined : clientCa };
}

function parseDriver(
  flagDrivers: string | undefined,
  flagDriver: string | undefined,
  fromEnv: string | undefined,
): string {
  if (flagDrivers && flagDriver) fail("--drivers and --driver are the same flag; give it once");
  const raw = flagDrivers ?? flagDriver ?? fromEnv ?? "kubernetes";
  const names = raw
    .split(",")
    .map((n) => n.trim().toLowerCase())
    .filter(Boolean);
  if (names.length === 0) fail("--drivers is empty; choose one of: kubernetes, vm");
  for (const name of names) {
    if (NOT_YET_IMPLEMENTED_DRIVERS.includes(name)) fail(`compute driver '${name}' is not implemented yet`);
    if (!(SUPPORTED_DRIVERS as readonly string[]).includes(name)) {
      fail(
        `unsupported compute driver '${name}'. expected one of: kubernetes, vm (test is a test-only driver)`,
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
  get: (name: string) => string | undefined,
  driver: string,
  grpcEndpoint: string | undefined,
): GatewayConfig["vm"]["tls"] {
  const ca = get("vm-tls-ca");
  const cert = get("vm-tls-cert");
  const key = get("vm-tls-key");
  if (driver === "vm" && grpcEndpoint?.startsWith("https://")) {
    if (!ca || !cert || !key) {
      fail(
        "--vm-tls-ca, --vm-tls-cert and --vm-tls-key are all required when --grpc-endpoint is https:// and the driver is vm",
      );
    }
    return { ca: ca as string, cert: cert as string, key: key as string };
  }
  return undefined;
}

function parseTimings(env: NodeJS.ProcessEnv): RuntimeTimings {
  const ms = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    if (!/^\d+$/.test(raw)) fail(`${name}='${raw}' must be a whole number of milliseconds`);
    return Number(raw);
  };
  return {
    reconcileIntervalMs: ms("OPENSHELL_RECONCILE_INTERVAL_MS", 60_000),
    orphanGraceMs: ms("OPENSHELL_ORPHAN_GRACE_MS", 300_000),
    watchRetryMs: ms("OPENSHELL_WATCH_RETRY_MS", 2_000),
    driverReadyTimeoutMs: ms("OPENSHELL_DRIVER_READY_TIMEOUT_MS", 10_000),
    driverRestartMaxBackoffMs: ms("OPENSHELL_DRIVER_RESTART_MAX_BACKOFF_MS", 30_000),
    drainTimeoutMs: ms("OPENSHELL_DRAIN_TIMEOUT_MS", 5_000),
  };
}

function defaultStateRoot(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(base, "openshell");
}
