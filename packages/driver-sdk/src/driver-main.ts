import type { Readable } from "node:stream";
import {
  createLogger,
  type FlagTable,
  type FlagValues,
  flagHelp,
  LOG_LEVELS,
  type Logger,
  OpenShellError,
  parseFlags,
} from "@openshell/core";
import { type ComputeDriverImpl, serveComputeDriver } from "./serve-driver.js";

export interface DriverCommonOptions {
  bindSocket: string;
  stateDir: string;
  logLevel: string;
}

export type DriverStopReason = "signal" | "parent-gone";

export interface DriverMainSpec<Extra, Flags extends FlagTable> {
  /** Binary name, e.g. `openshell-driver-vm`. */
  binary: string;
  /** Flags beyond the common ones; they appear in `--help` and are parsed by the same table. */
  extraFlags: Flags;
  /** Turns the parsed extra flags into the driver's options; throws OpenShellError with the fix on bad input. */
  parseExtra: (values: FlagValues<Flags>) => Extra;
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

/** The flags every driver binary takes; the gateway passes them (driver-process.ts). */
export const DRIVER_COMMON_FLAGS = {
  "bind-socket": { type: "string", arg: "PATH", description: "Unix socket to serve on (0600), required" },
  "state-dir": { type: "string", arg: "DIR", description: "where the driver keeps its state, required" },
  "log-level": { type: "enum", default: "info", values: LOG_LEVELS, arg: "LEVEL", description: "log level" },
  help: { type: "boolean", short: "h", description: "this text" },
} as const satisfies FlagTable;

/**
 * The shared entry point of driver binaries: parses the common flags, serves the driver on its Unix
 * socket, and exits when told to (SIGTERM/SIGINT) or when its parent gateway is gone (`parentPipe`
 * ends: the gateway keeps a pipe open on the driver's stdin for exactly this; a terminal is no pipe).
 */
export async function runDriverMain<Extra, Flags extends FlagTable>(
  spec: DriverMainSpec<Extra, Flags>,
  argv = process.argv.slice(2),
  parentPipe: Readable | undefined = process.stdin.isTTY ? undefined : process.stdin,
) {
  let logger: Logger | undefined;
  try {
    const table = { ...DRIVER_COMMON_FLAGS, ...spec.extraFlags };
    const { values } = parseFlags(table, argv, process.env, { binary: spec.binary });
    const common: FlagValues<typeof DRIVER_COMMON_FLAGS> = values;
    // The merged table's values hold every extra flag; TypeScript cannot narrow a generic intersection.
    const extraValues = values as unknown as FlagValues<Flags>;
    if (common.help) {
      process.stdout.write(driverUsage(spec.binary, table));
      return;
    }
    const bindSocket = requireString(common["bind-socket"], "--bind-socket");
    const stateDir = requireString(common["state-dir"], "--state-dir");
    const logLevel = common["log-level"];
    logger = createLogger({ name: spec.binary, level: logLevel });
    const extra = spec.parseExtra(extraValues);
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
    if (parentPipe) {
      parentPipe.on("end", () => void stop("parent gateway closed stdin", "parent-gone"));
      parentPipe.on("error", () => void stop("parent gateway stdin error", "parent-gone"));
      parentPipe.resume();
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

/** `--help` of a driver binary: the common flags, then the driver's own, all from their tables. */
export function driverUsage(binary: string, table: FlagTable): string {
  return flagHelp(table, {
    usage: `${binary} --bind-socket PATH --state-dir DIR [options]`,
    description:
      "A compute driver for openshell-gateway, serving openshell.compute.v1.ComputeDriver on a Unix socket.\nThe gateway starts it; it exits when the gateway closes its stdin.",
  });
}
