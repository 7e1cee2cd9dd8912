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
 * A stand-in for dockerd 20.10 where the driver's behaviour depends on how Docker answers: GET
 * /events first replays every buffered event whose timeNano is at or after `since` (seconds, with
 * an optional fraction), then follows; GET /info gives the daemon's clock; GET
 * /containers/{id}/json answers with the state when it was asked, at once or, while
 * `holdInspects`, when the test releases the answers (late, as behind a busy container's lock).
 */
class FakeDaemon {
  readonly events: string[] = [];
  readonly streams: PassThrough[] = [];
  readonly containers = new Map<string, Docker.ContainerInspectInfo>();
  now = 0n;
  holdInspects = false;
  private readonly held: (() => void)[] = [];
  /** Why starting a container fails (a runtime that refuses it), if it does. */
  startError: string | undefined;

  /** Answers the held inspects, in the order they were asked. */
  async releaseInspects(): Promise<void> {
    this.holdInspects = false;
    for (const answer of this.held.splice(0)) {
      answer();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  emit(action: string, container: Docker.ContainerInspectInfo, timeNano = this.now + 1_000n): void {
    this.now = timeNano;
    const event = JSON.stringify({
      Type: "container",
      Action: action,
      Actor: { ID: container.Id, Attributes: container.Config.Labels },
      time: Number(timeNano / SECOND),
    }).replace(/}$/, `,"timeNano":${timeNano}}`);
    this.events.push(event);
    for (const stream of this.streams) stream.write(`${event}\n`);
  }

  api(): Docker {
    const notFound = () => Object.assign(new Error("no such container"), { statusCode: 404 });
    const find = (idOrName: string) =>
      this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.Name === `/${idOrName}`);
    const container = (idOrName: string) => ({
      id: idOrName,
      inspect: async () => {
        const found = find(idOrName);
        const answer = found && structuredClone(found);
        // By id: the driver's refresh after an event (create looks containers up by name).
        if (this.holdInspects && !idOrName.startsWith("openshell-"))
          await new Promise<void>((resolve) => this.held.push(resolve));
        if (!answer) throw notFound();
        return answer;
      },
      start: async () => {
        if (this.startError) throw Object.assign(new Error(this.startError), { statusCode: 500 });
      },
      remove: async () => {
        const found = find(idOrName);
        if (!found) throw notFound();
        this.containers.delete(found.Id);
        this.emit("destroy", found);
      },
    });
    return {
      info: async () => ({ SystemTime: rfc3339(this.now) }),
      listContainers: async () =>
        [...this.containers.values()].map((c) => ({ Id: c.Id, Labels: c.Config.Labels })),
      getContainer: container,
      getImage: () => ({ inspect: async () => ({}) }),
      createVolume: async () => ({}),
      getVolume: () => ({ remove: async () => undefined }),
      createContainer: async (spec: { name: string; Labels: Record<string, string> }) => {
        const made = inspectInfo(`c${this.containers.size + 1}`, spec.name, spec.Labels, "created");
        this.containers.set(made.Id, made);
        this.emit("create", made);
        return container(made.Id);
      },
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

function inspectInfo(
  id: string,
  name: string,
  labels: Record<string, string>,
  status: "created" | "running",
): Docker.ContainerInspectInfo {
  return {
    Id: id,
    Name: `/${name}`,
    Config: { Labels: labels },
    State: { Status: status, Running: status === "running", ExitCode: 0, OOMKilled: false, Error: "" },
  } as unknown as Docker.ContainerInspectInfo;
}

function rfc3339(nano: bigint): string {
  const seconds = new Date(Number(nano / SECOND) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${String(nano % SECOND).padStart(9, "0")}Z`;
}

const OWN_LABELS = {
  [LABEL_SANDBOX_ID]: "sb-1",
  [LABEL_SANDBOX_NAME]: "one",
  [LABEL_MANAGED_BY]: MANAGED_BY,
  [LABEL_DRIVER_INSTANCE]: INSTANCE,
};

/** A daemon with one running container of the driver's, started `startedAt`. */
function daemonWithRunningContainer(startedAt: bigint): {
  daemon: FakeDaemon;
  container: Docker.ContainerInspectInfo;
} {
  const daemon = new FakeDaemon();
  const container = inspectInfo("c0ffee", "openshell-one", OWN_LABELS, "running");
  daemon.containers.set(container.Id, container);
  daemon.emit("start", container, startedAt);
  return { daemon, container };
}

describe("DockerDriver and Docker's event stream", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function loadedDriver(daemon: FakeDaemon) {
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
    const snapshots: compute.DriverSandbox[] = [];
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
        else if (event.payload.case === "sandbox" && event.payload.value.sandbox)
          snapshots.push(event.payload.value.sandbox);
    })();
    return { driver, reasons, snapshots };
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  it("a container started before the driver (same second) is adopted without a Started event", async () => {
    const second = BigInt(Math.floor(Date.now() / 1000)) * SECOND;
    const { daemon } = daemonWithRunningContainer(second + 1_000n);
    daemon.now = second + 5_000_000n;
    const { reasons } = await loadedDriver(daemon);
    await settle();
    expect(reasons).toEqual([]);
  });

  it("a resumed stream does not replay the events it already gave: one start, one Started", async () => {
    const { daemon, container } = daemonWithRunningContainer(BigInt(Date.now() - 60_000) * 1_000_000n);
    daemon.now = BigInt(Date.now()) * 1_000_000n;
    const { reasons } = await loadedDriver(daemon);
    daemon.emit("start", container);
    await settle();
    expect(reasons).toEqual(["Started"]);
    // The stream breaks (a proxy, a daemon hiccup); the driver resumes it after WATCH_RETRY_MS.
    const first = daemon.streams[0] as PassThrough;
    first.end();
    await expect.poll(() => daemon.streams.length, { timeout: 5_000 }).toBe(2);
    await settle();
    expect(reasons).toEqual(["Started"]);
    // Events after the resume still arrive.
    daemon.emit("start", container);
    await expect.poll(() => reasons, { timeout: 2_000 }).toEqual(["Started", "Started"]);
  });

  it("a create whose container does not start stays CreateFailed, whatever Docker reports late about the container it removed", async () => {
    const daemon = new FakeDaemon();
    daemon.now = BigInt(Date.now()) * 1_000_000n;
    // The inspects the create and destroy events trigger are answered after the failed create has
    // removed the container and said CreateFailed: "created" (the state when asked), then 404.
    daemon.startError = "OCI runtime start failed: the runtime refused";
    daemon.holdInspects = true;
    const { driver, snapshots } = await loadedDriver(daemon);
    await driver
      .impl()
      .createSandbox(
        create(compute.CreateSandboxRequestSchema, { sandbox: { id: "sb-2", name: "two", spec: {} } }),
        {} as never,
      );
    await expect
      .poll(() => snapshots.some((s) => s.status?.conditions.some((c) => c.reason === "CreateFailed")), {
        timeout: 2_000,
      })
      .toBe(true);
    await daemon.releaseInspects();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const ready = (
      sandbox:
        | { status?: { conditions?: readonly { type?: string; reason?: string; message?: string }[] } }
        | undefined,
    ) => sandbox?.status?.conditions?.find((c) => c.type === "Ready");
    const final = (
      await driver
        .impl()
        .getSandbox(create(compute.GetSandboxRequestSchema, { sandboxId: "sb-2" }), {} as never)
    ).sandbox;
    expect(ready(final)?.reason).toBe("CreateFailed");
    expect(ready(final)?.message).toContain("starting the container failed: OCI runtime start failed");
    // No snapshot on the way said anything else about the failure.
    expect(snapshots.map((s) => ready(s)?.reason).filter((reason) => reason === "ContainerRemoved")).toEqual(
      [],
    );
  });

  it("reads the daemon's clock from GET /info, to the nanosecond", () => {
    expect(daemonTimeNano("2026-11-30T16:40:01.123456789Z")).toBe(1_796_056_801_123_456_789n);
    expect(daemonTimeNano("2026-11-30T17:40:01.5+01:00")).toBe(1_796_056_801_500_000_000n);
    expect(daemonTimeNano("not a time")).toBeGreaterThan(0n);
  });
});
