import { create } from "@bufbuild/protobuf";
import { AsyncQueue, OpenShellError } from "@openshell/core";
import {
  type Sandbox,
  SandboxPhase,
  type SandboxStreamEvent,
  SandboxStreamEventSchema,
  SandboxStreamWarningSchema,
  type WatchSandboxRequest,
} from "@openshell/proto";
import { matchesLogFilter, type SandboxEvent, type SandboxEventHub } from "../events/sandbox-event-hub.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";

const WATCH_QUEUE_CAPACITY = 256;
const DEFAULT_LOG_TAIL = 200;

/**
 * WatchSandbox: subscribe first (so nothing between snapshot and follow is lost), send the current
 * snapshot, replay the log and platform-event tails, then follow what was asked for.
 * stop_on_terminal ends the stream at READY or ERROR (upstream's code stops only at READY, which
 * leaves a client waiting forever on a sandbox that failed).
 */
export async function* watchSandbox(
  request: WatchSandboxRequest,
  deps: { records: SandboxRecords; hub: SandboxEventHub },
  signal: AbortSignal,
): AsyncGenerator<SandboxStreamEvent> {
  if (!request.id) throw new OpenShellError("invalid_argument", "id is required");
  const queue = new AsyncQueue<SandboxEvent>(
    WATCH_QUEUE_CAPACITY,
    () =>
      new OpenShellError(
        "resource_exhausted",
        "watch stream fell behind the sandbox's events; reconnect to resume",
      ),
  );
  const unsubscribe = deps.hub.subscribe(request.id, (event) => queue.push(event));
  const onAbort = () => queue.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let sandbox = await deps.records.get(request.id);
    if (!sandbox) throw new OpenShellError("not_found", `sandbox ${request.id} not found`);
    yield event({ case: "sandbox", value: sandbox });
    if (request.stopOnTerminal && isTerminal(sandbox)) return;

    const logFilter = {
      sinceMs: request.logSinceMs,
      sources: request.logSources,
      minLevel: request.logMinLevel,
    };
    if (request.followLogs) {
      const tail = deps.hub.logTail(request.id, {
        ...logFilter,
        lines: request.logTailLines || DEFAULT_LOG_TAIL,
      });
      for (const line of tail.lines) yield event({ case: "log", value: line });
    }
    if (request.followEvents) {
      for (const platformEvent of deps.hub.eventTail(request.id))
        yield event({ case: "event", value: platformEvent });
    }
    if (!request.followStatus && !request.followLogs && !request.followEvents) return;

    for await (const next of queue) {
      switch (next.kind) {
        case "status": {
          if (!request.followStatus && !request.stopOnTerminal) break;
          const current = await deps.records.get(request.id);
          if (!current) break;
          const changed =
            current.phase !== sandbox.phase ||
            JSON.stringify(current.status?.conditions) !== JSON.stringify(sandbox.status?.conditions);
          if (request.followStatus && changed) yield event({ case: "sandbox", value: current });
          sandbox = current;
          if (request.stopOnTerminal && isTerminal(current)) return;
          break;
        }
        case "log":
          if (request.followLogs && matchesLogFilter(next.line, logFilter))
            yield event({ case: "log", value: next.line });
          break;
        case "platform":
          if (request.followEvents) yield event({ case: "event", value: next.event });
          break;
        case "deleted":
          yield event({
            case: "warning",
            value: create(SandboxStreamWarningSchema, { message: `sandbox ${sandbox.name} was deleted` }),
          });
          return;
      }
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    unsubscribe();
    queue.close();
  }
}

function isTerminal(sandbox: Sandbox): boolean {
  return sandbox.phase === SandboxPhase.READY || sandbox.phase === SandboxPhase.ERROR;
}

function event(payload: SandboxStreamEvent["payload"]): SandboxStreamEvent {
  return create(SandboxStreamEventSchema, { payload });
}
