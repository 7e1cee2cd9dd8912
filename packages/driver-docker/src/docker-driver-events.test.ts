import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { createLogger } from "@openshell/core";
import { compute } from "@openshell/proto";
import type Docker from "dockerode";
import { afterEach, describe, expect, it } from "vitest";
import {
  LABEL_DRIVER_INSTANCE,
  LABEL_MANAGED_BY,
  LABEL_SANDBOX_ID,
  LABEL_SANDBOX_NAME,
  MANAGED_BY,
} from "./container-spec.js";
import { DockerDriver } from "./docker-driver.js";
import { daemonTimeNano } from "./event-cursor.js";

const INSTANCE = "instance-1";
const SECOND = 1_000_000_000n;

/**
 * Docker's side of the event stream, as dockerd 20.10 does it: GET /events first replays every
 * buffered event whose timeNano is at or after `since` (seconds, with an optional fraction), then
 * follows; GET /info gives the daemon's clock.
 */
class EventsDaemon {
  readonly events: string[] = [];
  readonly streams: PassThrough[] = [];
  now = 0n;

  constructor(private readonly container: Docker.ContainerInspectInfo) {}

  start(timeNano: bigint): void {
    this.now = timeNano;
    const event = JSON.stringify({
      Type: "container",
      Action: "start",
      Actor: { ID: this.container.Id, Attributes: this.container.Config.Labels },
      time: Number(timeNano / SECOND),
    }).replace(/}$/, `,"timeNano":${timeNano}}`);
    this.events.push(event);
    for (const stream of this.streams) stream.write(`${event}\n`);
  }

  api(): Docker {
    const container = this.container;
    return {
      info: async () => ({ SystemTime: rfc3339(this.now) }),
      listContainers: async () => [{ Id: container.Id, Labels: container.Config.Labels }],
      getContainer: () => ({ inspect: async () => container }),
      getEvents: async (options: { since?: number }) => {
        const since = BigInt(Math.round((options.since ?? 0) * 1e6)) * 1000n;
        const stream = new PassThrough();
        this.streams.push(stream);
        for (const event of this.events) {
          const at = BigInt(/"timeNano":(\d+)/.exec(event)?.[1] ?? "0");
          if (at >= since) stream.write(`${event}\n`);
        }
        return stream;
      },
    } as unknown as Docker;
  }
}

function rfc3339(nano: bigint): string {
  const seconds = new Date(Number(nano / SECOND) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${String(nano % SECOND).padStart(9, "0")}Z`;
}

function runningContainer(): Docker.ContainerInspectInfo {
  return {
    Id: "c0ffee",
    Config: {
      Labels: {
        [LABEL_SANDBOX_ID]: "sb-1",
        [LABEL_SANDBOX_NAME]: "one",
        [LABEL_MANAGED_BY]: MANAGED_BY,
        [LABEL_DRIVER_INSTANCE]: INSTANCE,
      },
    },
    State: { Status: "running", Running: true, ExitCode: 0, OOMKilled: false, Error: "" },
  } as unknown as Docker.ContainerInspectInfo;
}

describe("DockerDriver and Docker's event stream", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function loadedDriver(daemon: EventsDaemon) {
    const stateDir = mkdtempSync(join(tmpdir(), "osdd-events-"));
    const driver = new DockerDriver({
      docker: daemon.api(),
      stateDir,
      spec: {
        defaultImage: "img",
        endpoint: "http://host.openshell.internal:1",
        network: "net",
        hostAddress: "10.0.0.1",
        supervisorDir: stateDir,
        instance: INSTANCE,
      },
      logger: createLogger({ name: "test", level: "silent" }),
    });
    const abort = new AbortController();
    const reasons: string[] = [];
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    cleanups.push(() => driver.shutdown());
    cleanups.push(() => abort.abort());
    await driver.load();
    const watch = driver.impl().watchSandboxes(create(compute.WatchSandboxesRequestSchema), {
      signal: abort.signal,
    } as never) as AsyncIterable<compute.WatchSandboxesEvent>;
    void (async () => {
      for await (const event of watch)
        if (event.payload.case === "platformEvent") reasons.push(event.payload.value.event?.reason ?? "");
    })();
    return { reasons };
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  it("a container started before the driver (same second) is adopted without a Started event", async () => {
    const daemon = new EventsDaemon(runningContainer());
    const second = BigInt(Math.floor(Date.now() / 1000)) * SECOND;
    daemon.start(second + 1_000n);
    daemon.now = second + 5_000_000n;
    const { reasons } = await loadedDriver(daemon);
    await settle();
    expect(reasons).toEqual([]);
  });

  it("a resumed stream does not replay the events it already gave: one start, one Started", async () => {
    const daemon = new EventsDaemon(runningContainer());
    daemon.now = BigInt(Date.now()) * 1_000_000n;
    const { reasons } = await loadedDriver(daemon);
    daemon.start(daemon.now + 1_000n);
    await settle();
    expect(reasons).toEqual(["Started"]);
    // The stream breaks (a proxy, a daemon hiccup); the driver resumes it after WATCH_RETRY_MS.
    const first = daemon.streams[0] as PassThrough;
    first.end();
    await expect.poll(() => daemon.streams.length, { timeout: 5_000 }).toBe(2);
    await settle();
    expect(reasons).toEqual(["Started"]);
    // Events after the resume still arrive.
    daemon.start(daemon.now + 2_000n);
    await expect.poll(() => reasons, { timeout: 2_000 }).toEqual(["Started", "Started"]);
  });

  it("reads the daemon's clock from GET /info, to the nanosecond", () => {
    expect(daemonTimeNano("2026-11-30T16:40:01.123456789Z")).toBe(1_796_056_801_123_456_789n);
    expect(daemonTimeNano("2026-11-30T17:40:01.5+01:00")).toBe(1_796_056_801_500_000_000n);
    expect(daemonTimeNano("not a time")).toBeGreaterThan(0n);
  });
});
