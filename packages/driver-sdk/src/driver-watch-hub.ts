import { create } from "@bufbuild/protobuf";
import { AsyncQueue } from "@openshell/core";
import { compute } from "@openshell/proto";

/** How far a WatchSandboxes consumer may fall behind before its stream fails (it then re-watches). */
const WATCHER_CAPACITY = 1024;

/**
 * The WatchSandboxes side of a driver: every watcher first gets a snapshot of each current
 * sandbox, then the updates, deletions and platform events the driver publishes.
 */
export class DriverWatchHub {
  private readonly watchers = new Set<AsyncQueue<compute.WatchSandboxesEvent>>();

  /** @param source the `source` of this driver's platform events (e.g. "vm"). */
  constructor(private readonly source: string) {}

  async *watch(
    signal: AbortSignal,
    current: () => Iterable<compute.DriverSandbox>,
  ): AsyncGenerator<compute.WatchSandboxesEvent> {
    const queue = new AsyncQueue<compute.WatchSandboxesEvent>(
      WATCHER_CAPACITY,
      () => new Error("watcher fell behind"),
    );
    this.watchers.add(queue);
    const onAbort = () => queue.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (const sandbox of current()) yield snapshotEvent(sandbox);
      yield* queue;
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.watchers.delete(queue);
    }
  }

  sandbox(sandbox: compute.DriverSandbox): void {
    this.broadcast(snapshotEvent(sandbox));
  }

  deleted(sandboxId: string): void {
    this.broadcast(
      create(compute.WatchSandboxesEventSchema, { payload: { case: "deleted", value: { sandboxId } } }),
    );
  }

  platformEvent(sandboxId: string, type: string, reason: string, message: string): void {
    this.publishPlatformEvent(
      sandboxId,
      create(compute.DriverPlatformEventSchema, {
        timestampMs: BigInt(Date.now()),
        source: this.source,
        type,
        reason,
        message,
      }),
    );
  }

  /** A platform event the driver built itself (its own timestamp, source and metadata). */
  publishPlatformEvent(sandboxId: string, event: compute.DriverPlatformEvent): void {
    this.broadcast(
      create(compute.WatchSandboxesEventSchema, {
        payload: { case: "platformEvent", value: { sandboxId, event } },
      }),
    );
  }

  private broadcast(event: compute.WatchSandboxesEvent): void {
    for (const watcher of this.watchers) watcher.push(event);
  }
}

function snapshotEvent(sandbox: compute.DriverSandbox): compute.WatchSandboxesEvent {
  return create(compute.WatchSandboxesEventSchema, { payload: { case: "sandbox", value: { sandbox } } });
}

/** Replaces the sandbox's Ready condition (drivers report Ready=False reasons; the gateway owns Ready=True). */
export function setReadyCondition(
  sandbox: compute.DriverSandbox,
  status: string,
  reason: string,
  message: string,
): void {
  sandbox.status ??= create(compute.DriverSandboxStatusSchema, { sandboxName: sandbox.name });
  const conditions = sandbox.status.conditions;
  const condition = create(compute.DriverConditionSchema, {
    type: "Ready",
    status,
    reason,
    message,
    lastTransitionTime: new Date().toISOString(),
  });
  const index = conditions.findIndex((c) => c.type === "Ready");
  if (index >= 0) conditions[index] = condition;
  else conditions.push(condition);
}
