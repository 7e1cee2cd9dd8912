import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Upstream's OCSF JSONL appender: `/var/log/openshell-ocsf.<date>.log`, daily, 3 files kept. */
const OCSF_JSONL_DIR = "/var/log";
const PREFIX = "openshell-ocsf.";
const SUFFIX = ".log";
const KEEP_FILES = 3;
/** OCSF `severity_id` of each severity name. */
const SEVERITY_IDS: Record<string, number> = { INFO: 1, LOW: 2, MEDIUM: 3, HIGH: 4, CRITICAL: 5, FATAL: 6 };
/** pino's own fields: not part of the event. */
const PINO_FIELDS = new Set(["level", "time", "pid", "hostname", "name", "msg", "ocsf", "v"]);

export interface OcsfJsonlOptions {
  /** Read on every event: the `ocsf_json_enabled` setting (`PolicyState.ocsfJsonEnabled`). */
  enabled: () => boolean;
  /** Where the daily files go (default `/var/log`). */
  dir?: string;
}

/**
 * A pino destination that, while `ocsf_json_enabled` is on, appends every OCSF event (a log record
 * `emitOcsf` wrote, i.e. one with an `ocsf` field) as one JSON object per line to
 * `openshell-ocsf.<YYYY-MM-DD>.log` (UTC date of the event), keeping the newest 3 files as
 * upstream. Off: nothing is written and the file is closed. A directory that cannot be written
 * disables the file until the setting is turned on again (never an error: the log must not fail).
 */
export class OcsfJsonlWriter {
  private fd: number | undefined;
  private fileDate = "";
  private failed = false;

  constructor(private readonly options: OcsfJsonlOptions) {}

  /** pino calls this with one serialized JSON line per record. */
  write(line: string): void {
    if (!this.options.enabled()) {
      this.close();
      this.failed = false;
      return;
    }
    if (this.failed) return;
    const event = toOcsfEvent(line);
    if (!event) return;
    const date = new Date(event.time).toISOString().slice(0, 10);
    try {
      if (this.fd === undefined || date !== this.fileDate) this.open(date);
      writeSync(this.fd as number, `${JSON.stringify(event)}\n`);
    } catch {
      this.close();
      this.failed = true;
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.fileDate = "";
  }

  private open(date: string): void {
    this.close();
    const dir = this.options.dir ?? OCSF_JSONL_DIR;
    mkdirSync(dir, { recursive: true });
    this.fd = openSync(join(dir, `${PREFIX}${date}${SUFFIX}`), "a", 0o644);
    this.fileDate = date;
    const files = readdirSync(dir)
      .filter((name) => /^openshell-ocsf\.\d{4}-\d{2}-\d{2}\.log$/.test(name))
      .sort();
    for (const old of files.slice(0, Math.max(0, files.length - KEEP_FILES))) {
      rmSync(join(dir, old), { force: true });
    }
  }
}

/** One OCSF event object from a pino line, or undefined when the record is not an OCSF event. */
function toOcsfEvent(line: string): ({ time: number } & Record<string, unknown>) | undefined {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const ocsf = record.ocsf as
    | { class_uid?: number; class?: string; activity?: string; severity?: string; disposition?: string }
    | undefined;
  if (typeof ocsf !== "object" || ocsf === null || typeof ocsf.class_uid !== "number") return undefined;
  const parsedTime = typeof record.time === "string" ? Date.parse(record.time) : Number(record.time);
  const unmapped: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (!PINO_FIELDS.has(key)) unmapped[key] = value;
  const severity = ocsf.severity ?? "INFO";
  return {
    time: Number.isFinite(parsedTime) ? parsedTime : Date.now(),
    class_uid: ocsf.class_uid,
    class_name: ocsf.class,
    category_uid: Math.floor(ocsf.class_uid / 1000),
    activity_name: ocsf.activity,
    severity,
    severity_id: SEVERITY_IDS[severity] ?? 0,
    ...(ocsf.disposition ? { disposition: ocsf.disposition } : {}),
    message: record.msg,
    metadata: { version: "1.7.0", product: { name: "OpenShell", vendor_name: "NVIDIA" } },
    ...(Object.keys(unmapped).length > 0 ? { unmapped } : {}),
  };
}
