import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { SUPERVISOR_EXIT } from "@openshell/core";

/** What a booting VM's console says: the guest init's milestones and the supervisor's gateway link. */
export type BootNews =
  | { kind: "guest-ready"; uptimeS: number }
  | { kind: "workspace-seeded" }
  | { kind: "supervisor-started" }
  | { kind: "unreachable"; detail: string }
  | { kind: "connected" };

const READ_CHUNK = 64 * 1024;

/**
 * Reads a VM's console log from where the current boot started and turns the lines that matter into
 * news: the guest init's milestones, the supervisor's start, a failed session (the guest cannot reach
 * the gateway's --grpc-endpoint) or an established one. Polling keeps it simple: one small read per
 * interval.
 */
export class BootConsoleWatch {
  private offset: number;
  private partial = "";
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly consoleLog: string,
    private readonly onNews: (news: BootNews) => void,
  ) {
    this.offset = existsSync(consoleLog) ? statSync(consoleLog).size : 0;
  }

  start(intervalMs = 500): void {
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads what was appended since the last poll (exposed for tests). */
  poll(): void {
    if (!existsSync(this.consoleLog)) return;
    const fd = openSync(this.consoleLog, "r");
    try {
      const buffer = Buffer.alloc(READ_CHUNK);
      for (;;) {
        const read = readSync(fd, buffer, 0, READ_CHUNK, this.offset);
        if (read <= 0) break;
        this.offset += read;
        this.consume(buffer.subarray(0, read).toString("utf8"));
      }
    } finally {
      closeSync(fd);
    }
  }

  private consume(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      const news = parseBootLine(line);
      if (news) this.onNews(news);
    }
  }
}

export function parseBootLine(line: string): BootNews | undefined {
  const init = /^OPENSHELL-VM-INIT (ready uptime=([\d.]+)|workspace seeded)/.exec(line);
  if (init) return init[2] ? { kind: "guest-ready", uptimeS: Number(init[2]) } : { kind: "workspace-seeded" };
  if (!line.startsWith("{")) return undefined;
  let record: { name?: string; msg?: string; ocsf?: unknown; workload_stream?: unknown };
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (record.name !== "openshell-sandbox" || typeof record.msg !== "string") return undefined;
  // Only the supervisor's own events: its workload's output lines (`workload_stream`) are logged
  // with the supervisor's name and could say anything.
  if (typeof record.ocsf !== "object" || record.workload_stream !== undefined) return undefined;
  if (record.msg.includes("openshell-sandbox starting")) return { kind: "supervisor-started" };
  if (record.msg.includes("supervisor session established")) return { kind: "connected" };
  // The start-up policy sync (before the session) and the session itself report the same way.
  const failed =
    /(?:supervisor session failed, reconnecting|start-up policy sync failed, retrying) in \d+ ms \(attempt \d+\): (.*)$/.exec(
      record.msg,
    );
  return failed ? { kind: "unreachable", detail: failed[1] ?? "" } : undefined;
}

/** How much of the console's end the exit readers scan, and the longest reason they give. */
const FATAL_SCAN_BYTES = 64 * 1024;
const FATAL_MAX_CHARS = 600;

/**
 * Why the supervisor of the console's last boot stopped (its `fatal` log line, e.g. fail closed:
 * `platform sandbox unavailable and the sandbox requires confinement: …`), escaped and cut; undefined
 * when the last boot has none. Read from the file itself: the console tail cuts lines too short.
 */
export function supervisorFatalAtStart(consoleLog: string): string | undefined {
  return readLastBoot(consoleLog).fatal;
}

/** How the guest's last boot ended, as its console tells (see `guestExit`). */
export type GuestExit =
  /** The supervisor could not start and failed closed (exit SUPERVISOR_EXIT.failedClosed with a fatal line). */
  | { kind: "failed-closed"; reason: string }
  /** The supervisor's workload exited, and with it the supervisor. */
  | { kind: "workload-exited"; detail: string }
  /** Anything else: a crash (QEMU killed, kernel panic, the supervisor died some other way). */
  | { kind: "other" };

/**
 * Tells a supervisor that failed closed (restarting cannot help: the sandbox goes to ERROR with its
 * reason) and a workload that exited from a crash, by the last boot's console: the guest init's
 * `supervisor exited status=N` line, the supervisor's `fatal` line and its workload's `PROC:TERMINATE`
 * record (matched by its fields, which the workload's own output lines cannot set). Everything
 * quoted from it is escaped and cut: the console is the guest's.
 */
export function guestExit(consoleLog: string): GuestExit {
  const boot = readLastBoot(consoleLog);
  if (boot.status === SUPERVISOR_EXIT.failedClosed && boot.fatal && !boot.workloadExit) {
    return { kind: "failed-closed", reason: boot.fatal };
  }
  const end = boot.workloadExit;
  if (!end) return { kind: "other" };
  const detail = end.timedOut
    ? `the sandbox's workload ran past its timeout and was killed (exit code ${SUPERVISOR_EXIT.workloadTimeout})`
    : end.signal
      ? `the sandbox's workload was killed by ${escapeGuestText(end.signal, 16)}`
      : `the sandbox's workload exited with code ${end.code ?? "unknown"}`;
  return { kind: "workload-exited", detail };
}

/**
 * Whether the supervisor of the console's last boot has had a gateway session (an adopted VM may
 * then be saved into a memory snapshot). Its 64 KiB scan can miss an old session under much later
 * output: the VM is then powered off instead, the safe side.
 */
export function guestSaidConnected(consoleLog: string): boolean {
  return readLastBoot(consoleLog).connected;
}

interface LastBoot {
  /** Whether the supervisor logged "supervisor session established". */
  connected: boolean;
  /** The guest init's `supervisor exited status=N`. */
  status: number | undefined;
  /** The supervisor's last `fatal` line, escaped and cut. */
  fatal: string | undefined;
  workloadExit: { code: number | undefined; signal: string | undefined; timedOut: boolean } | undefined;
}

function readLastBoot(consoleLog: string): LastBoot {
  const boot: LastBoot = { connected: false, status: undefined, fatal: undefined, workloadExit: undefined };
  let text: string;
  try {
    const fd = openSync(consoleLog, "r");
    try {
      const size = statSync(consoleLog).size;
      const length = Math.min(size, FATAL_SCAN_BYTES);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      text = buffer.toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return boot;
  }
  const lines = text.split("\n");
  const bootStart = lines.findLastIndex((line) => line.startsWith("OPENSHELL-VM-INIT ready"));
  for (const line of lines.slice(bootStart + 1)) {
    const exited = /^OPENSHELL-VM-INIT supervisor exited status=(\d{1,3}) /.exec(line);
    if (exited) boot.status = Number(exited[1]);
    if (!line.startsWith("{")) continue;
    if (parseBootLine(line)?.kind === "connected") boot.connected = true;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // not a log record
    }
    if (record.name !== "openshell-sandbox") continue;
    if (record.level === "fatal" && typeof record.msg === "string") {
      boot.fatal = escapeGuestText(record.msg, FATAL_MAX_CHARS);
    }
    const ocsf = record.ocsf as { class?: unknown; activity?: unknown } | undefined;
    if (record.workload === true && ocsf?.class === "PROC" && ocsf.activity === "TERMINATE") {
      boot.workloadExit = {
        code: typeof record.exit_code === "number" ? record.exit_code : undefined,
        signal: typeof record.signal === "string" ? record.signal : undefined,
        timedOut: record.timed_out === true,
      };
    }
  }
  return boot;
}

/** Guest text for a message: cut to `maxChars`, control characters (terminal escapes, bidi overrides) as escapes. */
function escapeGuestText(text: string, maxChars: number): string {
  return text.slice(0, maxChars).replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u{${c.charCodeAt(0).toString(16)}}`,
  );
}
