import { parseArgs } from "node:util";
import { createLogger, isLogLevel, type Logger, OpenShellError } from "@openshell/core";
import { type ComputeDriverImpl, serveComputeDriver } from "./serve-driver.js";

export interface DriverCommonOptions {
  bindSocket: string;
  stateDir: string;
  logLevel: string;
}

export type DriverStopReason = "signal" | "parent-gone";

export interface DriverMainSpec<Extra> {
  /** Binary name, e.g. `openshell-driver-vm`. */
  binary: string;
  /** Flags beyond the common ones, in node:util parseArgs form. */
  extraFlags?: Record<string, { type: "string" | "boolean"; default?: string | boolean }>;
  /** Validates the extra flags; throws OpenShellError with the fix on bad input. */
  parseExtra?: (values: Record<string, string | boolean | undefined>) => Extra;
  /**
   * Builds the driver; may return a cleanup to run at shutdown. `reason` tells a clean stop
   * (SIGTERM/SIGINT: the gateway is shutting down) from a vanished parent (the gateway crashed or was
   * killed), after which workloads such as VMs should keep running for the next driver to adopt.
   */
  create: (
    common: DriverCommonOptions,
    extra: Extra,
    logger: Logger,
  ) => Promise<{ impl: ComputeDriverImpl; shutdown?: (reason: DriverStopReason) => Promise<void> }>;
}

const COMMON_FLAGS = {
  "bind-socket": { type: "string" },
  "state-dir": { type: "string" },
  "log-level": { type: "string", default: "info" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * The shared entry point of driver binaries: parses the common flags, serves the driver on its Unix
 * socket, and exits when told to (SIGTERM/SIGINT) or when its parent gateway is gone (stdin closes:
 * the gateway keeps a pipe open on the driver's stdin for exactly this).
 */
export async function runDriverMain<Extra>(spec: DriverMainSpec<Extra>, argv = process.argv.slice(2)) {
  let logger: Logger | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ...COMMON_FLAGS, ...(spec.extraFlags ?? {}) },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(driverUsage(spec));
      return;
    }
    const bindSocket = requireString(values["bind-socket"], "--bind-socket");
    const stateDir = requireString(values["state-dir"], "--state-dir");
    const logLevel = String(values["log-level"]);
    if (!isLogLevel(logLevel)) {
      throw new OpenShellError(
        "config_invalid",
        `--log-level '${logLevel}' is not one of trace, debug, info, warn, error`,
      );
    }
    logger = createLogger({ name: spec.binary, level: logLevel });
    const extra = spec.parseExtra
      ? spec.parseExtra(values as Record<string, string | boolean | undefined>)
      : (undefined as Extra);
    const driver = await spec.create({ bindSocket, stateDir, logLevel }, extra, logger);
    const served = await serveComputeDriver({ impl: driver.impl, socketPath: bindSocket, logger });

    let stopping = false;
    const stop = async (reason: string, kind: DriverStopReason) => {
      if (stopping) return;
      stopping = true;
      logger?.info({ reason }, "compute driver stopping");
      await served.close();
      await driver.shutdown?.(kind);
      process.exit(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM", "signal"));
    process.on("SIGINT", () => void stop("SIGINT", "signal"));
    if (!process.stdin.isTTY) {
      process.stdin.on("end", () => void stop("parent gateway closed stdin", "parent-gone"));
      process.stdin.on("error", () => void stop("parent gateway stdin error", "parent-gone"));
      process.stdin.resume();
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (logger) logger.fatal({ err: error }, message);
    process.stderr.write(`${spec.binary}: ${message}\n`);
    process.exit(2);
  }
}

function requireString(value: unknown, flag: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new OpenShellError("config_invalid", `${flag} is required`);
  }
  return value;
}

function driverUsage<Extra>(spec: DriverMainSpec<Extra>): string {
  const extra = Object.keys(spec.extraFlags ?? {})
    .map((flag) => `  --${flag}\n`)
    .join("");
  return `Usage: ${spec.binary} --bind-socket PATH --state-dir DIR [--log-level LEVEL]\n\nA compute driver for openshell-gateway, serving openshell.compute.v1.ComputeDriver on a Unix socket.\nThe gateway starts it; it exits when the gateway closes its stdin.\n\nOptions:\n  --bind-socket PATH   Unix socket to serve on (0600)\n  --state-dir DIR      where the driver keeps its state\n  --log-level LEVEL    trace|debug|info|warn|error (default info)\n${extra}`;
}
