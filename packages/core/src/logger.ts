import { type DestinationStream, type LevelWithSilent, type Logger, pino } from "pino";

export type { Logger } from "pino";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export function isLogLevel(value: string): value is LevelWithSilent {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Defaults to stdout, written synchronously so nothing is lost when the process exits. */
  destination?: DestinationStream;
}

/** Structured JSON logs (pino): one object per line with `msg`, `level` and the component name. */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level && isLogLevel(options.level) ? options.level : "info";
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      name: options.name,
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
