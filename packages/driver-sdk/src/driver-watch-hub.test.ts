import { create } from "@bufbuild/protobuf";
import { compute } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { DriverWatchHub, setReadyCondition } from "./driver-watch-hub.js";

const sandbox = (id: string) => create(compute.DriverSandboxSchema, { id, name: `name-${id}` });

function describeEvent(event: compute.WatchSandboxesEvent): string {
  const { payload } = event;
  if (payload.case === "sandbox") return `sandbox ${payload.value.sandbox?.id}`;
  if (payload.case === "deleted") return `deleted ${payload.value.sandboxId}`;
  if (payload.case === "platformEvent")
    return `event ${payload.value.sandboxId} ${payload.value.event?.reason}`;
  return "empty";
}

describe("DriverWatchHub", () => {
  it("sends a snapshot of current sandboxes first, then what is published", async () => {
    const hub = new DriverWatchHub("test");
    const controller = new AbortController();
    const stream = hub.watch(controller.signal, () => [sandbox("a"), sandbox("b")]);
    expect(describeEvent((await stream.next()).value!)).toBe("sandbox a");
    // Published while the snapshot is still being read: delivered after it, not lost.
    hub.deleted("a");
    hub.sandbox(sandbox("c"));
    expect(describeEvent((await stream.next()).value!)).toBe("sandbox b");
    expect(describeEvent((await stream.next()).value!)).toBe("deleted a");
    expect(describeEvent((await stream.next()).value!)).toBe("sandbox c");
    controller.abort();
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });

  it("broadcasts to every watcher", async () => {
    const hub = new DriverWatchHub("test");
    const controller = new AbortController();
    const first = hub.watch(controller.signal, () => []);
    const second = hub.watch(controller.signal, () => []);
    const pending = [first.next(), second.next()];
    hub.deleted("x");
    const events = await Promise.all(pending);
    expect(events.map((e) => describeEvent(e.value!))).toEqual(["deleted x", "deleted x"]);
    controller.abort();
  });

  it("ends a watch when its signal aborts, leaving the others running", async () => {
    const hub = new DriverWatchHub("test");
    const stopped = new AbortController();
    const running = new AbortController();
    const ended = hub.watch(stopped.signal, () => []);
    const live = hub.watch(running.signal, () => []);
    const endedNext = ended.next();
    const liveNext = live.next();
    stopped.abort();
    expect(await endedNext).toEqual({ value: undefined, done: true });
    hub.sandbox(sandbox("after"));
    expect(describeEvent((await liveNext).value!)).toBe("sandbox after");
    running.abort();
  });

  it("stamps platform events with its source and the current time", async () => {
    const hub = new DriverWatchHub("vm");
    const controller = new AbortController();
    const stream = hub.watch(controller.signal, () => []);
    const next = stream.next();
    const before = Date.now();
    hub.platformEvent("sb-1", "Warning", "BootFailed", "kernel panic");
    const { value } = await next;
    expect(value?.payload.case).toBe("platformEvent");
    if (value?.payload.case !== "platformEvent") return;
    const { sandboxId, event } = value.payload.value;
    expect(sandboxId).toBe("sb-1");
    expect(event).toMatchObject({
      source: "vm",
      type: "Warning",
      reason: "BootFailed",
      message: "kernel panic",
    });
    expect(Number(event?.timestampMs)).toBeGreaterThanOrEqual(before);
    expect(Number(event?.timestampMs)).toBeLessThanOrEqual(Date.now());
    controller.abort();
  });

  it("fails a watcher that falls more than 1024 events behind", async () => {
    const hub = new DriverWatchHub("test");
    const controller = new AbortController();
    const stream = hub.watch(controller.signal, () => []);
    const first = stream.next();
    hub.deleted("0");
    await first;
    for (let i = 1; i <= 1024; i++) hub.deleted(String(i));
    expect(describeEvent((await stream.next()).value!)).toBe("deleted 1");
    for (let i = 1025; i <= 1026; i++) hub.deleted(String(i));
    await expect(stream.next()).rejects.toThrow("watcher fell behind");
  });
});

describe("setReadyCondition", () => {
  it("creates the status and a Ready condition when there is none", () => {
    const target = sandbox("a");
    const before = Date.now();
    setReadyCondition(target, "False", "Starting", "booting the VM");
    expect(target.status?.sandboxName).toBe("name-a");
    expect(target.status?.conditions).toHaveLength(1);
    const [condition] = target.status?.conditions ?? [];
    expect(condition).toMatchObject({
      type: "Ready",
      status: "False",
      reason: "Starting",
      message: "booting the VM",
    });
    expect(Date.parse(condition?.lastTransitionTime ?? "")).toBeGreaterThanOrEqual(before - 1000);
  });

  it("replaces the Ready condition and keeps the others", () => {
    const target = sandbox("a");
    target.status = create(compute.DriverSandboxStatusSchema, {
      sandboxName: "kept",
      conditions: [
        { type: "Scheduled", status: "True", reason: "Placed" },
        { type: "Ready", status: "False", reason: "Starting" },
      ],
    });
    setReadyCondition(target, "False", "Crashed", "the VM exited");
    expect(target.status.sandboxName).toBe("kept");
    expect(target.status.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      "Scheduled=True/Placed",
      "Ready=False/Crashed",
    ]);
  });
});
