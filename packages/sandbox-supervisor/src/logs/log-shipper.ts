import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { sleep } from "@openshell/core";
import { type OpenShell, type SandboxLogLine, SandboxLogLineSchema } from "@openshell/proto";

/** Upstream LogPushLayer: flush at 50 lines or every 500 ms; the gateway takes 100 per batch. */
const FLUSH_LINES = 50;
const FLUSH_INTERVAL_MS = 500;
/** Lines kept while the gateway is unreachable; the oldest are dropped beyond this. */
const MAX_BUFFERED_LINES = 2_000;

const PINO_LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "ERROR",
};

/**
 * A pino destination that ships the supervisor's log lines to the gateway (PushSandboxLogs) in
 * batches, while a connection is up. Shipping failures are never logged through this destination
 * (that would loop); lines stay buffered for the next connection.
 */
export class LogShipper {
  private buffer: SandboxLogLine[] = [];
  private client: Client<typeof OpenShell> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  dropped = 0;

  constructor(
    private readonly sandboxId: string,
    private readonly headers: Record<string, string>,
  ) {}

  /** pino calls this with one serialized JSON line per record. */
  write(line: string): void {
    const record = parseRecord(line);
    if (!record) return;
    this.buffer.push(record);
    if (this.buffer.length > MAX_BUFFERED_LINES) {
      this.buffer.splice(0, this.buffer.length - MAX_BUFFERED_LINES);
      this.dropped++;
    }
    if (this.buffer.length >= FLUSH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
  }

  setClient(client: Client<typeof OpenShell> | undefined): void {
    this.client = client;
    if (client && this.buffer.length > 0) void this.flush();
  }

  /**
   * Ships everything buffered while a connection is up (a stopping supervisor's last lines: the
   * workload's end), waiting for a send in flight; gives up on a failed send or after `timeoutMs`.
   */
  async drain(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), timeoutMs);
    });
    try {
      while (this.client && this.buffer.length > 0 && Date.now() < deadline) {
        if (this.sending) {
          if ((await Promise.race([sleep(20), expired])) === "expired") return;
          continue;
        }
        const before = this.buffer.length;
        if ((await Promise.race([this.flush(), expired])) === "expired") return;
        if (this.buffer.length >= before) return; // the send failed
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    if (!client || this.sending || this.buffer.length === 0) return;
    this.sending = true;
    const batch = this.buffer.splice(0, FLUSH_LINES);
    try {
      await client.pushSandboxLogs(
        (async function* (sandboxId) {
          yield { sandboxId, logs: batch };
        })(this.sandboxId),
        { headers: this.headers },
      );
    } catch {
      this.buffer.unshift(...batch);
    } finally {
      this.sending = false;
    }
    if (this.client && this.buffer.length >= FLUSH_LINES) void this.flush();
    else if (this.buffer.length > 0)
      this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
  }
}

/** How long a stopping supervisor waits for its last lines to reach the gateway. */
const DRAIN_TIMEOUT_MS = 3_000;

function parseRecord(line: string): SandboxLogLine | undefined {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const { msg, level, time, name, pid: _pid, hostname: _hostname, ...rest } = json;
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(rest)) {
    fields[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  const levelName = typeof level === "string" ? level.toUpperCase() : (PINO_LEVELS[Number(level)] ?? "INFO");
  const isOcsf = "ocsf" in rest;
  return create(SandboxLogLineSchema, {
    timestampMs: BigInt(typeof time === "string" ? Date.parse(time) || Date.now() : Date.now()),
    level: isOcsf ? "OCSF" : levelName,
    target: typeof name === "string" ? name : "openshell-sandbox",
    message: typeof msg === "string" ? msg : "",
    fields,
  });
}
