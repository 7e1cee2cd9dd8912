import { create } from "@bufbuild/protobuf";
import { type PlatformEvent, type SandboxLogLine, SandboxLogLineSchema } from "@openshell/proto";

export type SandboxEvent =
  | { kind: "status" }
  | { kind: "log"; line: SandboxLogLine }
  | { kind: "platform"; event: PlatformEvent }
  | { kind: "deleted" };

export type SandboxEventListener = (event: SandboxEvent) => void;

export interface LogFilter {
  lines: number;
  sinceMs: bigint;
  sources: string[];
  minLevel: string;
}

const LOG_TAIL_CAPACITY = 2000;
const PLATFORM_EVENT_TAIL = 50;

const LEVEL_RANK: Record<string, number> = { error: 0, warn: 1, info: 2, ocsf: 2, debug: 3, trace: 4 };

/**
 * In-memory, per-sandbox fan-out of status changes, log lines and platform events, with bounded
 * tails for replay (logs are not persisted, as upstream). Listeners are called synchronously.
 */
export class SandboxEventHub {
  private readonly listeners = new Map<string, Set<SandboxEventListener>>();
  private readonly logs = new Map<string, SandboxLogLine[]>();
  private readonly events = new Map<string, PlatformEvent[]>();

  subscribe(sandboxId: string, listener: SandboxEventListener): () => void {
    let set = this.listeners.get(sandboxId);
    if (!set) {
      set = new Set();
      this.listeners.set(sandboxId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(sandboxId) === set) this.listeners.delete(sandboxId);
    };
  }

  notifyStatus(sandboxId: string): void {
    this.emit(sandboxId, { kind: "status" });
  }

  /** The sandbox is gone: tell watchers, then forget its tails. */
  notifyDeleted(sandboxId: string): void {
    this.emit(sandboxId, { kind: "deleted" });
    this.logs.delete(sandboxId);
    this.events.delete(sandboxId);
  }

  publishLog(line: SandboxLogLine): void {
    const tail = this.logs.get(line.sandboxId) ?? [];
    tail.push(line);
    if (tail.length > LOG_TAIL_CAPACITY) tail.splice(0, tail.length - LOG_TAIL_CAPACITY);
    this.logs.set(line.sandboxId, tail);
    this.emit(line.sandboxId, { kind: "log", line });
  }

  /** A log line the gateway itself writes about a sandbox (source "gateway"). */
  gatewayLog(sandboxId: string, level: string, message: string, fields: Record<string, string> = {}): void {
    this.publishLog(
      create(SandboxLogLineSchema, {
        sandboxId,
        timestampMs: BigInt(Date.now()),
        level: level.toUpperCase(),
        target: "openshell_gateway",
        message,
        source: "gateway",
        fields,
      }),
    );
  }

  publishPlatformEvent(sandboxId: string, event: PlatformEvent): void {
    const tail = this.events.get(sandboxId) ?? [];
    tail.push(event);
    if (tail.length > PLATFORM_EVENT_TAIL) tail.splice(0, tail.length - PLATFORM_EVENT_TAIL);
    this.events.set(sandboxId, tail);
    this.emit(sandboxId, { kind: "platform", event });
  }

  logTail(sandboxId: string, filter: LogFilter): { lines: SandboxLogLine[]; bufferTotal: number } {
    const all = this.logs.get(sandboxId) ?? [];
    const matching = all.filter((line) => matchesLogFilter(line, filter));
    return { lines: filter.lines > 0 ? matching.slice(-filter.lines) : matching, bufferTotal: all.length };
  }

  eventTail(sandboxId: string): PlatformEvent[] {
    return [...(this.events.get(sandboxId) ?? [])];
  }

  private emit(sandboxId: string, event: SandboxEvent): void {
    const set = this.listeners.get(sandboxId);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }
}

export function matchesLogFilter(line: SandboxLogLine, filter: Omit<LogFilter, "lines">): boolean {
  if (filter.sinceMs > 0n && line.timestampMs < filter.sinceMs) return false;
  if (filter.sources.length > 0 && !filter.sources.includes(line.source || "gateway")) return false;
  if (filter.minLevel) {
    const limit = LEVEL_RANK[filter.minLevel.toLowerCase()];
    const rank = LEVEL_RANK[line.level.toLowerCase()];
    if (limit !== undefined && rank !== undefined && rank > limit) return false;
  }
  return true;
}
