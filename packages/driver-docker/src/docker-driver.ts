import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { type Logger, OPENSHELL_VERSION, OpenShellError, SUPERVISOR_EXIT } from "@openshell/core";
import { type ComputeDriverImpl, DriverWatchHub } from "@openshell/driver-sdk";
import { compute } from "@openshell/proto";
import type Docker from "dockerode";
import {
  buildContainerSpec,
  type ContainerSpecOptions,
  containerName,
  imageOf,
  LABEL_DRIVER_INSTANCE,
  LABEL_MANAGED_BY,
  LABEL_SANDBOX_ID,
  LABEL_SANDBOX_NAME,
  MANAGED_BY,
  MANAGED_FILTER,
  validateSandbox,
  workspaceVolumeName,
} from "./container-spec.js";
import { dockerMessage, dockerStatus } from "./docker-connection.js";
import { DockerEventCursor, daemonTimeNano } from "./event-cursor.js";
import {
  type ContainerObservation,
  EVENT_SOURCE,
  exitMessage,
  type SandboxCondition,
  toDriverSandbox,
} from "./sandbox-status.js";

export interface DockerDriverOptions {
  docker: Docker;
  stateDir: string;
  spec: ContainerSpecOptions;
  /** A root filesystem tar (`docker import` format) imported as the default image when a daemon lacks it. */
  defaultImageArchive?: string;
  logger: Logger;
}

interface SandboxRecord {
  id: string;
  name: string;
  condition: SandboxCondition;
  deleting: boolean;
  /**
   * Until create has made and started the container (for good when create failed): what Docker
   * reports about the container meanwhile, or late (an inspect answered after a failed create's
   * cleanup, the removal of its own container), is not the sandbox's state; provision() says it.
   */
  provisioning: boolean;
}

const WATCH_RETRY_MS = 1_000;
const STOP_TIMEOUT_SECS = 10;
const EXIT_LOG_LINES = 5;
/** Lines of a dead container's log searched for the supervisor's `fatal` line. */
const EXIT_LOG_SCAN = 50;

/**
 * The Docker compute driver: each sandbox is one container (label openshell.ai/sandbox-id) and one
 * named volume at /sandbox. Docker holds the state: at start the driver lists the containers with
 * its label and adopts them (running ones keep running); Docker's events (resumed from the last
 * one's time after a break, with a relist) keep the snapshots current. The one thing Docker cannot
 * tell is whether an exited container was stopped on purpose: `<state>/stopped.json` keeps the ids
 * StopSandbox stopped.
 */
export class DockerDriver {
  private readonly docker: Docker;
  private readonly hub = new DriverWatchHub(EVENT_SOURCE);
  private readonly sandboxes = new Map<string, SandboxRecord>();
  private readonly stopped: Set<string>;
  private events: Readable | undefined;
  private cursor = new DockerEventCursor(0n);
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly options: DockerDriverOptions) {
    this.docker = options.docker;
    this.stopped = new Set(this.readStopped());
  }

  async load(): Promise<void> {
    this.cursor = new DockerEventCursor(daemonTimeNano((await this.docker.info()).SystemTime));
    await this.relist();
    await this.watchEvents();
    this.options.logger.info({ sandboxes: this.sandboxes.size }, "adopted existing sandbox containers");
  }

  async shutdown(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.events?.destroy();
  }

  impl(): ComputeDriverImpl {
    return {
      getCapabilities: () =>
        create(compute.GetCapabilitiesResponseSchema, {
          driverName: "docker",
          driverVersion: OPENSHELL_VERSION,
          defaultImage: this.options.spec.defaultImage,
          supportsGpu: false,
        }),
      validateSandboxCreate: (req) => {
        validateSandbox(req.sandbox);
        return {};
      },
      getSandbox: (req) => {
        const record = this.find(req.sandboxId, req.sandboxName);
        if (!record)
          throw new OpenShellError("not_found", `sandbox ${req.sandboxName || req.sandboxId} not found`);
        return { sandbox: this.snapshot(record) };
      },
      listSandboxes: () => ({
        sandboxes: [...this.sandboxes.values()]
          .map((r) => this.snapshot(r))
          .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id)),
      }),
      createSandbox: async (req) => {
        await this.create(req.sandbox);
        return {};
      },
      stopSandbox: async (req) => {
        await this.stop(req.sandboxId, req.sandboxName);
        return {};
      },
      startSandbox: async (req) => {
        await this.start(req.sandboxId, req.sandboxName);
        return {};
      },
      deleteSandbox: async (req) => ({ deleted: await this.delete(req.sandboxId, req.sandboxName) }),
      watchSandboxes: (_req, context) =>
        this.hub.watch(context.signal, () => [...this.sandboxes.values()].map((r) => this.snapshot(r))),
    };
  }

  /** Label filters (ANDed by Docker) of this driver's own containers. */
  private get ownLabels(): string[] {
    return [MANAGED_FILTER, `${LABEL_DRIVER_INSTANCE}=${this.options.spec.instance}`];
  }

  private snapshot(record: SandboxRecord): compute.DriverSandbox {
    return toDriverSandbox(record.id, record.name, record.condition, record.deleting);
  }

  private publish(record: SandboxRecord): void {
    this.hub.sandbox(this.snapshot(record));
  }

  private find(id: string, name: string): SandboxRecord | undefined {
    if (id) return this.sandboxes.get(id);
    for (const record of this.sandboxes.values()) if (record.name === name) return record;
    return undefined;
  }

  /** Validates and records the sandbox, then provisions it in the background (image, volume, container). */
  private async create(input: compute.DriverSandbox | undefined): Promise<void> {
    const sandbox = validateSandbox(input);
    const taken = this.find(sandbox.id, "") ?? this.find("", sandbox.name);
    if (taken) throw new OpenShellError("already_exists", `sandbox ${sandbox.name} already exists`);
    const existing = await this.docker
      .getContainer(containerName(sandbox.name))
      .inspect()
      .catch(() => undefined);
    if (existing) {
      throw new OpenShellError(
        "already_exists",
        `a container named ${containerName(sandbox.name)} already exists on the Docker daemon; remove it or pick another sandbox name`,
      );
    }
    const record: SandboxRecord = {
      id: sandbox.id,
      name: sandbox.name,
      condition: { kind: "provisioning", message: "preparing the image and the workspace volume" },
      deleting: false,
      provisioning: true,
    };
    this.sandboxes.set(sandbox.id, record);
    this.stopped.delete(sandbox.id);
    this.publish(record);
    void this.provision(sandbox, record);
  }

  /**
   * Image, volume, container, start. A failure at any step leaves nothing behind and says which
   * step failed; a Delete that came meanwhile is noticed after each step, and what the steps made
   * after Delete's own cleanup is removed here.
   */
  private async provision(sandbox: compute.DriverSandbox, record: SandboxRecord): Promise<void> {
    const logger = this.options.logger.child({ sandbox_id: sandbox.id });
    const image = imageOf(sandbox, this.options.spec);
    let step = `image ${image} is not on the Docker daemon and getting it failed`;
    const deletedMeanwhile = () => {
      if (record.deleting) throw new DeletedMeanwhile();
    };
    try {
      await this.ensureImage(image, sandbox.id);
      deletedMeanwhile();
      step = "creating the workspace volume failed";
      await this.docker.createVolume({
        Name: workspaceVolumeName(sandbox.id),
        Labels: {
          [LABEL_SANDBOX_ID]: sandbox.id,
          [LABEL_SANDBOX_NAME]: sandbox.name,
          [LABEL_MANAGED_BY]: MANAGED_BY,
          [LABEL_DRIVER_INSTANCE]: this.options.spec.instance,
        },
      });
      deletedMeanwhile();
      step = `creating the container from ${image} failed`;
      const container = await this.docker.createContainer(buildContainerSpec(sandbox, this.options.spec));
      deletedMeanwhile();
      this.hub.platformEvent(
        sandbox.id,
        "Normal",
        "Created",
        `container ${containerName(sandbox.name)} created`,
      );
      step = "starting the container failed";
      await container.start();
      deletedMeanwhile();
      record.provisioning = false;
      await this.refresh(container.id);
    } catch (error) {
      const deleted = error instanceof DeletedMeanwhile;
      const message = `${step}: ${dockerMessage(error)}`;
      if (!deleted) logger.warn({ err: message }, "create failed; removing what it made");
      try {
        await this.removeArtifacts(sandbox.id, sandbox.name);
      } catch (cleanupError) {
        logger.warn({ err: dockerMessage(cleanupError) }, "could not remove what the failed create made");
      }
      if (deleted || record.deleting) return;
      record.condition = { kind: "failed", reason: "CreateFailed", message };
      this.publish(record);
      this.hub.platformEvent(sandbox.id, "Warning", "CreateFailed", message);
    }
  }

  /** Whether what Docker says of the sandbox's container is not the sandbox's state (being created or deleted). */
  private notContainerState(record: SandboxRecord): boolean {
    return record.deleting || record.provisioning;
  }

  /** The image, imported (the default one, from its archive) or pulled when the daemon lacks it, with progress events. */
  private async ensureImage(image: string, sandboxId: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (error) {
      if (dockerStatus(error) !== 404) throw error;
    }
    const archive = this.options.defaultImageArchive;
    if (image === this.options.spec.defaultImage && archive) {
      this.hub.platformEvent(
        sandboxId,
        "Normal",
        "Importing",
        `importing the sandbox image ${image} from ${archive}`,
      );
      const [repo, tag] = splitTag(image);
      const stream = (await this.docker.importImage(archive, { repo, tag })) as unknown as Readable;
      await this.followProgress(stream, sandboxId, "Importing");
      await this.docker.getImage(image).inspect();
      this.hub.platformEvent(sandboxId, "Normal", "Imported", `imported the sandbox image ${image}`);
      return;
    }
    this.hub.platformEvent(sandboxId, "Normal", "Pulling", `pulling image ${image}`);
    const stream = (await this.docker.pull(image)) as Readable;
    await this.followProgress(stream, sandboxId, "Pulling");
    this.hub.platformEvent(sandboxId, "Normal", "Pulled", `pulled image ${image}`);
  }

  /** A pull's or import's JSON progress lines: statuses become events (at most one per layer and status); an error line fails it. */
  private followProgress(stream: Readable, sandboxId: string, reason: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const seen = new Set<string>();
      this.docker.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { status?: string; id?: string; error?: string }) => {
          if (event.error) return;
          const text = `${event.id ? `${event.id}: ` : ""}${event.status ?? ""}`.trim();
          if (!text || seen.has(text)) return;
          seen.add(text);
          this.hub.platformEvent(sandboxId, "Normal", reason, text);
        },
      );
    });
  }

  private async stop(id: string, name: string): Promise<void> {
    const record = this.require(id, name);
    this.stopped.add(record.id);
    this.writeStopped();
    if (record.condition.kind !== "container") return;
    await this.docker
      .getContainer(record.condition.container.id)
      .stop({ t: STOP_TIMEOUT_SECS })
      .catch((error: unknown) => {
        if (dockerStatus(error) !== 304) throw dockerError(error, "stopping the container");
      });
    await this.refresh(record.condition.container.id);
  }

  private async start(id: string, name: string): Promise<void> {
    const record = this.require(id, name);
    this.stopped.delete(record.id);
    this.writeStopped();
    if (record.condition.kind !== "container") {
      throw new OpenShellError("failed_precondition", `sandbox ${record.name} has no container to start`);
    }
    await this.setRestartPolicy(record.condition.container.id, "unless-stopped");
    await this.docker
      .getContainer(record.condition.container.id)
      .start()
      .catch((error: unknown) => {
        if (dockerStatus(error) !== 304) throw dockerError(error, "starting the container");
      });
    await this.refresh(record.condition.container.id);
  }

  private async delete(id: string, name: string): Promise<boolean> {
    const record = this.find(id, name);
    if (!record) return false;
    record.deleting = true;
    this.publish(record);
    await this.removeArtifacts(record.id, record.name);
    this.sandboxes.delete(record.id);
    this.stopped.delete(record.id);
    this.writeStopped();
    this.hub.deleted(record.id);
    return true;
  }

  /** Container and workspace volume of a sandbox; what is already gone is fine. */
  private async removeArtifacts(id: string, name: string): Promise<void> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_SANDBOX_ID}=${id}`, ...this.ownLabels] },
    });
    const ids = new Set(containers.map((c) => c.Id));
    const named = await this.docker
      .getContainer(containerName(name))
      .inspect()
      .catch(() => undefined);
    if (named?.Config.Labels?.[LABEL_SANDBOX_ID] === id) ids.add(named.Id);
    for (const containerId of ids) {
      await this.docker
        .getContainer(containerId)
        .remove({ force: true, v: false })
        .catch((error: unknown) => {
          if (dockerStatus(error) !== 404) throw dockerError(error, "removing the container");
        });
    }
    await this.docker
      .getVolume(workspaceVolumeName(id))
      .remove()
      .catch((error: unknown) => {
        if (dockerStatus(error) !== 404) throw dockerError(error, "removing the workspace volume");
      });
  }

  private require(id: string, name: string): SandboxRecord {
    const record = this.find(id, name);
    if (!record) throw new OpenShellError("not_found", `sandbox ${name || id} not found`);
    if (record.deleting)
      throw new OpenShellError("failed_precondition", `sandbox ${record.name} is being deleted`);
    return record;
  }

  /** Every container with the driver's label: adopt, update, and drop sandboxes whose container is gone. */
  private async relist(): Promise<void> {
    const containers = await this.docker.listContainers({ all: true, filters: { label: this.ownLabels } });
    const present = new Set<string>();
    for (const entry of containers) {
      const sandboxId = entry.Labels[LABEL_SANDBOX_ID];
      const sandboxName = entry.Labels[LABEL_SANDBOX_NAME];
      if (!sandboxId || !sandboxName) continue;
      present.add(sandboxId);
      const inspected = await this.docker
        .getContainer(entry.Id)
        .inspect()
        .catch(() => undefined);
      if (inspected) this.observe(observation(inspected));
    }
    for (const record of [...this.sandboxes.values()]) {
      if (record.condition.kind === "container" && !present.has(record.id)) this.lost(record);
    }
  }

  private async refresh(containerId: string): Promise<void> {
    try {
      this.observe(observation(await this.docker.getContainer(containerId).inspect()));
    } catch (error) {
      if (dockerStatus(error) !== 404) throw error;
      for (const record of this.sandboxes.values()) {
        if (record.condition.kind === "container" && record.condition.container.id === containerId)
          this.lost(record);
      }
    }
  }

  private observe(container: ContainerObservation): void {
    const record = this.sandboxes.get(container.sandboxId) ?? {
      id: container.sandboxId,
      name: container.sandboxName,
      condition: { kind: "provisioning", message: "" },
      deleting: false,
      provisioning: false,
    };
    this.sandboxes.set(record.id, record);
    if (this.notContainerState(record)) return;
    record.condition = { kind: "container", container, wantedStopped: this.stopped.has(record.id) };
    this.publish(record);
  }

  /** Its container was removed by someone else: the sandbox cannot come back. */
  private lost(record: SandboxRecord): void {
    if (this.notContainerState(record)) return;
    record.condition = {
      kind: "failed",
      reason: "ContainerRemoved",
      message: `container ${containerName(record.name)} was removed outside OpenShell; delete the sandbox (its workspace volume ${workspaceVolumeName(record.id)} is kept until then)`,
    };
    this.publish(record);
  }

  private async watchEvents(): Promise<void> {
    const stream = (await this.docker.getEvents({
      since: this.cursor.since(),
      filters: { type: ["container"], label: this.ownLabels },
    })) as unknown as Readable;
    this.events = stream;
    let buffer = "";
    stream.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
        const line = buffer.slice(0, at).trim();
        buffer = buffer.slice(at + 1);
        if (line) this.onEvent(line);
      }
    });
    const resume = (why: string) => {
      if (this.closed || this.events !== stream) return;
      this.events = undefined;
      this.options.logger.warn({ reason: why }, "Docker events stream ended; resuming");
      this.retry = setTimeout(() => void this.resumeEvents(), WATCH_RETRY_MS);
    };
    stream.on("error", (error) => resume(error.message));
    stream.on("end", () => resume("end"));
    stream.on("close", () => resume("close"));
  }

  private async resumeEvents(): Promise<void> {
    try {
      await this.watchEvents();
      await this.relist();
    } catch (error) {
      this.options.logger.warn({ err: dockerMessage(error) }, "cannot resume Docker events; retrying");
      if (!this.closed) this.retry = setTimeout(() => void this.resumeEvents(), WATCH_RETRY_MS);
    }
  }

  private onEvent(line: string): void {
    let event: {
      Action?: string;
      Actor?: { ID?: string; Attributes?: Record<string, string> };
    };
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    // timeNano exceeds a double's integer precision: read it from the text.
    const timeNano = /"timeNano":(\d+)\}$/.exec(line)?.[1];
    if (!this.cursor.accept(timeNano === undefined ? undefined : BigInt(timeNano))) return;
    const action = event.Action ?? "";
    const containerId = event.Actor?.ID;
    const sandboxId = event.Actor?.Attributes?.[LABEL_SANDBOX_ID];
    if (!containerId || !sandboxId) return;
    const record = this.sandboxes.get(sandboxId);
    if (action === "die" && record && !record.deleting && !this.stopped.has(sandboxId)) {
      const exitCode = Number(event.Actor?.Attributes?.exitCode);
      // A supervisor that failed closed fails the same way again: end Docker's restarts.
      if (exitCode === SUPERVISOR_EXIT.failedClosed) void this.setRestartPolicy(containerId, "no");
      void this.exitEvent(containerId, sandboxId, Number.isFinite(exitCode) ? exitCode : undefined);
    } else if (action === "oom") {
      this.hub.platformEvent(sandboxId, "Warning", "OOMKilled", "the container exceeded its memory limit");
    } else if (action === "start" && record && !record.deleting) {
      this.hub.platformEvent(
        sandboxId,
        "Normal",
        "Started",
        `container ${containerName(record.name)} started`,
      );
    }
    if (
      ["create", "start", "die", "stop", "restart", "destroy", "pause", "unpause", "oom", "kill"].includes(
        action,
      )
    ) {
      void this.refresh(containerId).catch((error: unknown) =>
        this.options.logger.warn(
          { sandbox_id: sandboxId, err: dockerMessage(error) },
          "cannot inspect the container",
        ),
      );
    }
  }

  /** Docker's restart policy of a container (`no` after the supervisor failed closed; Start sets it back). */
  private async setRestartPolicy(containerId: string, name: "no" | "unless-stopped"): Promise<void> {
    try {
      await this.docker.getContainer(containerId).update({ RestartPolicy: { Name: name } });
    } catch (error) {
      this.options.logger.warn(
        { container: containerId.slice(0, 12), err: dockerMessage(error) },
        `cannot set the container's restart policy to ${name}`,
      );
    }
  }

  /** A container that exited on its own: a Warning with its exit code and the last lines it wrote (the supervisor's reason). */
  private async exitEvent(
    containerId: string,
    sandboxId: string,
    exitCode: number | undefined,
  ): Promise<void> {
    let lines: string[] = [];
    try {
      const logs = (await this.docker
        .getContainer(containerId)
        .logs({ stdout: true, stderr: true, tail: EXIT_LOG_SCAN, follow: false })) as unknown as Buffer;
      lines = containerOutputLines(logs);
    } catch {
      // the container is already gone: the exit code is all there is
    }
    // The supervisor's own reason when it failed closed (its `fatal` log line), else the last lines.
    const fatal = lines.map(fatalMessage).findLast((message) => message !== undefined);
    const text =
      exitCode === SUPERVISOR_EXIT.failedClosed && fatal
        ? `the supervisor failed closed: ${escapeControls(fatal.slice(0, 600))}`
        : `${exitMessage({ exitCode })}${
            lines.length > 0
              ? `; its last output:\n${lines
                  .slice(-EXIT_LOG_LINES)
                  .map((line) => escapeControls(line.slice(0, 200)))
                  .join("\n")}`
              : ""
          }`;
    this.hub.platformEvent(sandboxId, "Warning", "ContainerExited", text);
  }

  private get stoppedFile(): string {
    return join(this.options.stateDir, "stopped.json");
  }

  private readStopped(): string[] {
    if (!existsSync(this.stoppedFile)) return [];
    try {
      const ids: unknown = JSON.parse(readFileSync(this.stoppedFile, "utf8"));
      return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === "string") : [];
    } catch {
      return [];
    }
  }

  private writeStopped(): void {
    writeFileSync(this.stoppedFile, `${JSON.stringify([...this.stopped])}\n`, { mode: 0o600 });
  }
}

function observation(inspected: Docker.ContainerInspectInfo): ContainerObservation {
  const labels = inspected.Config.Labels ?? {};
  return {
    id: inspected.Id,
    sandboxId: labels[LABEL_SANDBOX_ID] ?? "",
    sandboxName: labels[LABEL_SANDBOX_NAME] ?? "",
    state: inspected.State.Status,
    exitCode: inspected.State.Running ? undefined : inspected.State.ExitCode,
    oomKilled: inspected.State.OOMKilled,
    error: inspected.State.Error || undefined,
  };
}

/**
 * A container's log (no TTY: frames of an 8-byte header, stream and length, then the bytes) as its
 * non-empty lines, as written: sandbox output, escaped where it is shown.
 */
function containerOutputLines(raw: Buffer): string[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at + 8 <= raw.length; ) {
    const length = raw.readUInt32BE(at + 4);
    chunks.push(raw.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  return Buffer.concat(chunks)
    .toString("utf8")
    .split("\n")
    .filter((line) => line.trim());
}

/** The message of a supervisor log line at level fatal (JSON, pino's). */
function fatalMessage(line: string): string | undefined {
  if (!line.includes('"level":"fatal"')) return undefined;
  try {
    const parsed = JSON.parse(line) as { msg?: unknown };
    return typeof parsed.msg === "string" ? parsed.msg : undefined;
  } catch {
    return line;
  }
}

/** Control characters (C0, DEL, C1) and bidi overrides as `\u{N}`: the rest of the text as it is. */
function escapeControls(line: string): string {
  let out = "";
  for (const char of line) {
    const code = char.codePointAt(0) ?? 0;
    const control =
      (code < 0x20 && code !== 0x09) ||
      (code >= 0x7f && code <= 0x9f) ||
      (code >= 0x202a && code <= 0x202e) ||
      (code >= 0x2066 && code <= 0x2069);
    out += control ? `\\u{${code.toString(16)}}` : char;
  }
  return out;
}

/** Provisioning's own control flow: the sandbox was deleted while it was being made. */
class DeletedMeanwhile extends Error {}

function splitTag(image: string): [string, string] {
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, "latest"];
}

function dockerError(error: unknown, doing: string): OpenShellError {
  const status = dockerStatus(error);
  const code = status === 404 ? "not_found" : status === 409 ? "failed_precondition" : "unavailable";
  return new OpenShellError(code, `${doing} failed: ${dockerMessage(error)}`);
}
