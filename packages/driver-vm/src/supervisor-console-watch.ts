import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";

/** What the supervisor's console lines say about its link to the gateway. */
export type SupervisorLinkNews = { kind: "unreachable"; detail: string } | { kind: "connected" };

const READ_CHUNK = 64 * 1024;

/**
 * Reads a VM's console log from where the current boot started and turns the supervisor's JSON log
 * lines about its gateway session into news: a failed session (the guest cannot reach the gateway's
 * --grpc-endpoint) or an established one. Polling keeps it simple: one small read per interval.
 */
export class SupervisorConsoleWatch {
  private offset: number;
  private partial = "";
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly consoleLog: string,
    private readonly onNews: (news: SupervisorLinkNews) => void,
  ) {
    this.offset = existsSync(consoleLog) ? statSync(consoleLog).size : 0;
  }

  start(intervalMs = 1_000): void {
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
      const news = parseSupervisorLine(line);
      if (news) this.onNews(news);
    }
  }
}

export function parseSupervisorLine(line: string): SupervisorLinkNews | undefined {
  if (!line.startsWith("{")) return undefined;
  let record: { name?: string; msg?: string };
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (record.name !== "openshell-sandbox" || typeof record.msg !== "string") return undefined;
  if (record.msg.includes("supervisor session established")) return { kind: "connected" };
  const failed = /supervisor session failed, reconnecting in \d+ ms \(attempt \d+\): (.*)$/.exec(record.msg);
  return failed ? { kind: "unreachable", detail: failed[1] ?? "" } : undefined;
}
