import type { Logger } from "pino";

/**
 * OCSF-style security events (class names and uids from OCSF v1.7.0, as upstream emits them).
 * Each event is one structured log line: `ocsf` carries the machine-readable fields and `msg` the
 * shorthand upstream prints, e.g. `SSH:OPEN [INFO] ALLOWED connection accepted on supervisor socket`.
 */
export const OcsfClasses = {
  NET: 4001,
  HTTP: 4002,
  SSH: 4007,
  PROC: 1007,
  FINDING: 2004,
  LIFECYCLE: 6002,
  CONFIG: 5019,
} as const;

export type OcsfClass = keyof typeof OcsfClasses;
export type OcsfSeverity = "INFO" | "LOW" | "MEDIUM" | "HIGH" | "CRITICAL" | "FATAL";
export type OcsfDisposition = "ALLOWED" | "BLOCKED" | undefined;

export interface OcsfEvent {
  class: OcsfClass;
  /** OPEN, CLOSE, FAIL, REFUSE, LISTEN, LAUNCH, TERMINATE, START, … */
  activity: string;
  severity?: OcsfSeverity;
  disposition?: OcsfDisposition;
  message: string;
  /** Extra machine-readable context (ids, peers, exit codes). */
  fields?: Record<string, unknown>;
}

export function formatOcsfShorthand(event: OcsfEvent): string {
  const severity = event.severity ?? "INFO";
  const disposition = event.disposition ? ` ${event.disposition}` : "";
  return `${event.class}:${event.activity} [${severity}]${disposition} ${event.message}`;
}

/** Logs `event` at a level that follows its severity. */
export function emitOcsf(logger: Logger, event: OcsfEvent): void {
  const severity = event.severity ?? "INFO";
  const record = {
    ocsf: {
      class_uid: OcsfClasses[event.class],
      class: event.class,
      activity: event.activity,
      severity,
      disposition: event.disposition,
    },
    ...event.fields,
  };
  const line = formatOcsfShorthand(event);
  if (severity === "INFO" || severity === "LOW") logger.info(record, line);
  else if (severity === "MEDIUM") logger.warn(record, line);
  else logger.error(record, line);
}
