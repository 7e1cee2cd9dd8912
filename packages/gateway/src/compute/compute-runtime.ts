import { Code, ConnectError } from "@connectrpc/connect";
import { type Logger, OpenShellError, SerialLock, sleep } from "@openshell/core";
import { type compute, type Sandbox, SandboxPhase } from "@openshell/proto";
import type { SandboxEventHub } from "../events/sandbox-event-hub.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { toDriverSandbox, toPublicPlatformEvent, toPublicStatus } from "./driver-mapping.js";
import type { DriverProcess } from "./driver-process.js";
import { derivePhase, phaseAfterSnapshot, phaseName } from "./phase.js";
import {
  demoteOnSessionDisconnected,
  keepReadyWhileSessionLive,
  promoteOnSessionConnected,
  withPowerPhase,
} from "./readiness.js";

export interface ComputeRuntimeOptions {
  driver: DriverProcess;
  records: SandboxRecords;
  hub: SandboxEventHub;
  /** Whether a supervisor session is live for a sandbox (the session registry). */
  hasSession: (sandboxId: string) => boolean;
  /** Issues the credential the driver hands to the sandbox's supervisor. */
  issueSupervisorToken: (sandboxId: string) => string;
  logger: Logger;
  reconcileIntervalMs: number;
  orphanGraceMs: number;
  watchRetryMs: number;
}

const RECONCILE_LIST_LIMIT = 500;

/**
 * Keeps the store in step with the compute driver: creates and deletes through it, consumes its
 * WatchSandboxes stream (restarting after `watchRetryMs` on error), reconciles against its snapshot
 * every `reconcileIntervalMs`, and owns the READY transition driven by supervisor sessions.
 * Every store mutation runs under one lock, so snapshot, session and delete updates never interleave.
 */
export class ComputeRuntime {
  private readonly lock = new SerialLock();
  private readonly stopSignal = new AbortController();
  private loops: Promise<void>[] = [];
  /** The tail of each sandbox's queue of power changes (stop, start): one at a time per sandbox. */
  private readonly powerChanges = new Map<string, Promise<void>>();

  constructor(private readonly options: ComputeRuntimeOptions) {}

  get defaultImage(): string {
    return this.options.driver.driverCapabilities?.defaultImage ?? "";
  }

  start(): void {
    this.loops = [this.watchLoop(), this.reconcileLoop(), this.enforceStopIntents()];
  }

  async stop(): Promise<void> {
    this.stopSignal.abort();
    await Promise.allSettled(this.loops);
  }

  private driverSandbox(sandbox: Sandbox): compute.DriverSandbox {
    return toDriverSandbox(sandbox, this.options.issueSupervisorToken(sandbox.id));
  }

  async validateCreate(sandbox: Sandbox): Promise<void> {
    const client = await this.options.driver.client();
    await client.validateSandboxCreate({ sandbox: this.driverSandbox(sandbox) }).catch((error: unknown) => {
      throw driverError(error, "validate sandbox");
    });
  }

  /** Persists the sandbox, then asks the driver to create it; a driver failure removes the row again. */
  async createSandbox(sandbox: Sandbox): Promise<Sandbox> {
    return this.persistAndCreate(
      sandbox,
      "",
      `sandbox ${sandbox.name} accepted; asking the compute driver to create it`,
      "create sandbox",
    );
  }

  /**
   * FAILED_PRECONDITION unless the driver copies running sandboxes (GetCapabilities' supports_fork,
   * read when the driver last started): checked before a fork stores anything.
   */
  async requireForkSupport(): Promise<void> {
    await this.options.driver.client();
    const capabilities = this.options.driver.driverCapabilities;
    if (capabilities?.supportsFork) return;
    throw new OpenShellError(
      "failed_precondition",
      `the compute driver '${capabilities?.driverName || "in use"}' cannot fork sandboxes; fork needs the VM driver (openshell gateway start --driver vm)`,
    );
  }

  /**
   * Persists the fork `sandbox`, then asks the driver to create it as a copy of `source`
   * (CreateSandbox with fork_of = the source's id); a driver failure removes the row again.
   */
  async forkSandbox(sandbox: Sandbox, source: Sandbox): Promise<Sandbox> {
    this.options.hub.gatewayLog(source.id, "info", `forking sandbox ${source.name} into ${sandbox.name}`);
    return this.persistAndCreate(
      sandbox,
      source.id,
      `sandbox ${sandbox.name} accepted as a fork of ${source.name}; asking the compute driver to copy it`,
      "fork sandbox",
    );
  }

  private async persistAndCreate(
    sandbox: Sandbox,
    forkOf: string,
    acceptedMessage: string,
    action: string,
  ): Promise<Sandbox> {
    await this.lock.run(() => this.options.records.insert(sandbox));
    this.options.hub.gatewayLog(sandbox.id, "info", acceptedMessage);
    try {
      const client = await this.options.driver.client();
      await client.createSandbox({ sandbox: this.driverSandbox(sandbox), forkOf });
    } catch (error) {
      await this.lock.run(() => this.options.records.delete(sandbox.id));
      this.options.hub.notifyDeleted(sandbox.id);
      throw driverError(error, action);
    }
    return (await this.options.records.get(sandbox.id)) ?? sandbox;
  }

  /**
   * Marks the sandbox DELETING and asks the driver to delete it. The row goes when the driver reports
   * it deleted; when the driver had nothing to delete, it goes at once.
   */
  async deleteSandbox(sandbox: Sandbox): Promise<void> {
    await this.lock.run(async () => {
      const current = await this.options.records.get(sandbox.id);
      if (!current) return;
      current.phase = SandboxPhase.DELETING;
      await this.options.records.update(current);
    });
    this.options.hub.notifyStatus(sandbox.id);
    this.options.hub.gatewayLog(sandbox.id, "info", `deleting sandbox ${sandbox.name}`);
    const client = await this.options.driver.client();
    const response = await client
      .deleteSandbox({ sandboxId: sandbox.id, sandboxName: sandbox.name })
      .catch((error: unknown) => {
        throw driverError(error, "delete sandbox");
      });
    if (!response.deleted) await this.removeRow(sandbox.id, "the compute driver had nothing to delete");
  }

  /**
   * The user's StopSandbox: records the intent (kept across gateway restarts), STOPPING, the driver's
   * StopSandbox, then STOPPED. A sandbox already STOPPED is answered unchanged. When the driver
   * cannot stop sandboxes (UNIMPLEMENTED) nothing changes; when it fails otherwise the intent stays
   * and the sandbox stays STOPPING (stop again, or start it).
   */
  async stopSandbox(sandboxId: string): Promise<Sandbox> {
    return this.powerChange(sandboxId, async () => {
      const began = await this.lock.run(async () => {
        const current = await this.requirePowerable(sandboxId, "stop");
        const hadIntent = await this.options.records.hasStopIntent(sandboxId);
        if (hadIntent && current.phase === SandboxPhase.STOPPED) return undefined;
        await this.options.records.markStopIntent(sandboxId);
        const stopping = withPowerPhase(current, SandboxPhase.STOPPING);
        await this.options.records.update(stopping);
        return { before: current, hadIntent };
      });
      if (!began) return await this.requireRecord(sandboxId);
      this.announcePhase(began.before, began.before.phase, SandboxPhase.STOPPING);
      try {
        await this.driverStop(began.before);
      } catch (error) {
        if (isUnimplemented(error)) {
          await this.lock.run(async () => {
            if (!began.hadIntent) await this.options.records.clearStopIntent(sandboxId);
            const current = await this.options.records.get(sandboxId);
            if (current?.phase === SandboxPhase.STOPPING) await this.options.records.update(began.before);
          });
          this.announcePhase(began.before, SandboxPhase.STOPPING, began.before.phase);
        }
        throw this.powerError(error, "stop");
      }
      await this.markStopped(sandboxId);
      return await this.requireRecord(sandboxId);
    });
  }

  /**
   * The user's StartSandbox: a STOPPED, STOPPING, STARTING or ERROR sandbox loses its stop intent,
   * becomes STARTING and the driver boots it again; its supervisor's session makes it READY. A
   * running one (PROVISIONING, READY) is answered unchanged. When the driver fails, a stopped sandbox
   * stays stopped.
   */
  async startSandbox(sandboxId: string): Promise<Sandbox> {
    return this.powerChange(sandboxId, async () => {
      const began = await this.lock.run(async () => {
        const current = await this.requirePowerable(sandboxId, "start");
        if (!STARTABLE.has(current.phase)) return undefined;
        const hadIntent = await this.options.records.clearStopIntent(sandboxId);
        await this.options.records.update(withPowerPhase(current, SandboxPhase.STARTING));
        return { before: current, hadIntent };
      });
      if (!began) return await this.requireRecord(sandboxId);
      this.announcePhase(began.before, began.before.phase, SandboxPhase.STARTING);
      this.options.hub.gatewayLog(sandboxId, "info", `starting sandbox ${began.before.name}`);
      try {
        const client = await this.options.driver.client();
        await client.startSandbox({ sandboxId, sandboxName: began.before.name });
      } catch (error) {
        await this.lock.run(async () => {
          if (began.hadIntent) await this.options.records.markStopIntent(sandboxId);
          const current = await this.options.records.get(sandboxId);
          if (current?.phase === SandboxPhase.STARTING) await this.options.records.update(began.before);
        });
        this.announcePhase(began.before, SandboxPhase.STARTING, began.before.phase);
        throw this.powerError(error, "start");
      }
      return await this.requireRecord(sandboxId);
    });
  }

  async supervisorSessionConnected(sandboxId: string): Promise<void> {
    await this.mutate(sandboxId, (sandbox) => promoteOnSessionConnected(sandbox));
    const sandbox = await this.options.records.get(sandboxId);
    if (sandbox?.phase === SandboxPhase.STOPPED && (await this.options.records.hasStopIntent(sandboxId))) {
      // The driver booted a sandbox the user stopped (e.g. its own restart lost the stop): stop it again.
      this.options.logger.warn(
        { sandbox_id: sandboxId, sandbox: sandbox.name },
        "the supervisor of a stopped sandbox connected; stopping the sandbox again",
      );
      void this.reassertStop(sandboxId);
    }
  }

  async supervisorSessionDisconnected(sandboxId: string): Promise<void> {
    await this.mutate(sandboxId, (sandbox) => demoteOnSessionDisconnected(sandbox));
  }

  /**
   * At start no supervisor session exists yet, so a READY stored by an earlier run is stale: demote
   * it until its supervisor reconnects (otherwise clients see READY and exec fails "not ready").
   */
  async demoteStaleReady(): Promise<void> {
    const page = { limit: RECONCILE_LIST_LIMIT, offset: 0 };
    for (
      let rows = await this.options.records.list(page);
      rows.length > 0;
      rows = await this.options.records.list(page)
    ) {
      for (const sandbox of rows) {
        if (!this.options.hasSession(sandbox.id)) await this.supervisorSessionDisconnected(sandbox.id);
      }
      page.offset += rows.length;
    }
  }

  /**
   * At start, every sandbox the user stopped is stopped through the driver again: a stop an earlier
   * run did not finish completes (STOPPING -> STOPPED), and a driver that booted it anyway powers it
   * off. Intents of sandboxes that no longer exist are dropped.
   */
  private async enforceStopIntents(): Promise<void> {
    for (const sandboxId of await this.options.records.stopIntents()) {
      if (this.stopSignal.signal.aborted) return;
      if (!(await this.options.records.get(sandboxId))) {
        await this.options.records.clearStopIntent(sandboxId);
        continue;
      }
      await this.reassertStop(sandboxId);
    }
  }

  /** The driver's StopSandbox for a sandbox that has a stop intent; failures are logged. */
  private async reassertStop(sandboxId: string): Promise<void> {
    await this.powerChange(sandboxId, async () => {
      const sandbox = await this.options.records.get(sandboxId);
      if (!sandbox || sandbox.phase === SandboxPhase.DELETING) return;
      if (!(await this.options.records.hasStopIntent(sandboxId))) return;
      await this.driverStop(sandbox);
      await this.markStopped(sandboxId);
    }).catch((error: unknown) => {
      if (this.stopSignal.signal.aborted) return;
      this.options.logger.warn(
        { sandbox_id: sandboxId, err: describe(error) },
        "could not stop a sandbox the user stopped; it is retried at the next gateway start",
      );
    });
  }

  private async driverStop(sandbox: Sandbox): Promise<void> {
    this.options.hub.gatewayLog(sandbox.id, "info", `stopping sandbox ${sandbox.name}`);
    const client = await this.options.driver.client();
    await client.stopSandbox({ sandboxId: sandbox.id, sandboxName: sandbox.name });
  }

  /** STOPPING (or a STOPPED whose condition a snapshot replaced) becomes STOPPED. */
  private async markStopped(sandboxId: string): Promise<void> {
    await this.mutate(sandboxId, (sandbox) =>
      sandbox.phase === SandboxPhase.STOPPING ? withPowerPhase(sandbox, SandboxPhase.STOPPED) : undefined,
    );
  }

  private async requirePowerable(sandboxId: string, action: "stop" | "start"): Promise<Sandbox> {
    const current = await this.requireRecord(sandboxId);
    if (current.phase === SandboxPhase.DELETING) {
      throw new OpenShellError(
        "failed_precondition",
        `sandbox ${current.name} is being deleted and cannot ${action}`,
      );
    }
    return current;
  }

  private async requireRecord(sandboxId: string): Promise<Sandbox> {
    const current = await this.options.records.get(sandboxId);
    if (!current) throw new OpenShellError("not_found", `sandbox ${sandboxId} not found`);
    return current;
  }

  /** Driver errors of a stop or start; UNIMPLEMENTED says which driver cannot do it. */
  private powerError(error: unknown, action: "stop" | "start"): OpenShellError {
    if (!isUnimplemented(error)) return driverError(error, `${action} sandbox`);
    const driver = this.options.driver.driverCapabilities?.driverName || "in use";
    return new OpenShellError(
      "unimplemented",
      `the compute driver '${driver}' cannot ${action} sandboxes (its ${action === "stop" ? "StopSandbox" : "StartSandbox"} is not implemented); the sandbox was left as it was`,
      { cause: error },
    );
  }

  /** Runs power changes of one sandbox one after another; different sandboxes run in parallel. */
  private powerChange<T>(sandboxId: string, change: () => Promise<T>): Promise<T> {
    const previous = this.powerChanges.get(sandboxId) ?? Promise.resolve();
    const result = previous.then(change);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.powerChanges.set(sandboxId, tail);
    void tail.then(() => {
      if (this.powerChanges.get(sandboxId) === tail) this.powerChanges.delete(sandboxId);
    });
    return result;
  }

  /**
   * Read-modify-write of one stored sandbox under the runtime's lock, for fields the runtime does
   * not own (policy backfill, current_policy_version); `change` returns undefined for "no change".
   */
  async updateSandbox(sandboxId: string, change: (sandbox: Sandbox) => Sandbox | undefined): Promise<void> {
    await this.mutate(sandboxId, change);
  }

  /** Publishes a phase change the runtime wrote itself (outside `mutate`). */
  private announcePhase(sandbox: Sandbox, from: SandboxPhase, to: SandboxPhase): void {
    if (from !== to) {
      const message = `phase ${phaseName(from)} -> ${phaseName(to)}`;
      this.options.logger.info({ sandbox_id: sandbox.id, sandbox: sandbox.name }, message);
      this.options.hub.gatewayLog(sandbox.id, "info", message);
    }
    this.options.hub.notifyStatus(sandbox.id);
  }

  /** Applies one driver snapshot to the stored sandbox (unknown sandboxes are ignored). */
  async applyDriverSnapshot(driverSandbox: compute.DriverSandbox): Promise<void> {
    await this.mutate(driverSandbox.id, (sandbox) => {
      const next = sandboxFromSnapshot(sandbox, driverSandbox);
      const kept = keepReadyWhileSessionLive(next, this.options.hasSession(sandbox.id));
      return sameObservation(sandbox, kept) ? undefined : kept;
    });
  }

  /** One reconciliation pass against the driver's full snapshot. */
  async reconcileOnce(): Promise<void> {
    const sweepStartedAt = Date.now();
    const client = await this.options.driver.client();
    const { sandboxes } = await client.listSandboxes({});
    const seen = new Set<string>();
    for (const driverSandbox of sandboxes) {
      seen.add(driverSandbox.id);
      await this.applyDriverSnapshot(driverSandbox);
    }
    const rows = await this.options.records.list({ limit: RECONCILE_LIST_LIMIT, offset: 0 });
    for (const row of rows) {
      if (seen.has(row.id)) continue;
      if (sweepStartedAt - Number(row.createdAtMs) < this.options.orphanGraceMs) continue;
      const stillThere = await client.getSandbox({ sandboxId: row.id, sandboxName: row.name }).then(
        () => true,
        (error: unknown) => !(error instanceof ConnectError && error.code === Code.NotFound),
      );
      if (!stillThere) {
        await this.removeRow(
          row.id,
          "Removing sandbox from store after it disappeared from the compute driver snapshot",
        );
      }
    }
  }

  private async watchLoop(): Promise<void> {
    const { logger, watchRetryMs } = this.options;
    const signal = this.stopSignal.signal;
    while (!signal.aborted) {
      try {
        const client = await this.options.driver.client(watchRetryMs * 5);
        for await (const event of client.watchSandboxes({}, { signal })) {
          await this.applyWatchEvent(event);
        }
        if (!signal.aborted) logger.warn("compute driver watch stream ended; restarting it");
      } catch (error) {
        if (signal.aborted) break;
        logger.warn(
          { err: describe(error), retryInMs: watchRetryMs },
          "compute driver watch failed; restarting it",
        );
      }
      await sleep(watchRetryMs, signal);
    }
  }

  private async reconcileLoop(): Promise<void> {
    const signal = this.stopSignal.signal;
    while (!signal.aborted) {
      await sleep(this.options.reconcileIntervalMs, signal);
      if (signal.aborted) break;
      try {
        await this.reconcileOnce();
      } catch (error) {
        this.options.logger.warn({ err: describe(error) }, "reconcile pass failed; will retry");
      }
    }
  }

  private async applyWatchEvent(event: compute.WatchSandboxesEvent): Promise<void> {
    switch (event.payload.case) {
      case "sandbox":
        if (event.payload.value.sandbox) await this.applyDriverSnapshot(event.payload.value.sandbox);
        break;
      case "deleted":
        await this.removeRow(event.payload.value.sandboxId, "compute driver reported the sandbox deleted");
        break;
      case "platformEvent": {
        const { sandboxId, event: platformEvent } = event.payload.value;
        if (platformEvent)
          this.options.hub.publishPlatformEvent(sandboxId, toPublicPlatformEvent(platformEvent));
        break;
      }
    }
  }

  /** Read-modify-write of one sandbox under the lock; `change` returns undefined for "no change". */
  private async mutate(sandboxId: string, change: (sandbox: Sandbox) => Sandbox | undefined): Promise<void> {
    const changed = await this.lock.run(async () => {
      const sandbox = await this.options.records.get(sandboxId);
      if (!sandbox) return undefined;
      const next = change(sandbox);
      if (!next) return undefined;
      await this.options.records.update(next);
      return { before: sandbox, after: next };
    });
    if (!changed) return;
    if (changed.before.phase !== changed.after.phase) {
      const message = `phase ${phaseName(changed.before.phase)} -> ${phaseName(changed.after.phase)}`;
      this.options.logger.info({ sandbox_id: sandboxId, sandbox: changed.after.name }, message);
      this.options.hub.gatewayLog(sandboxId, "info", message);
    }
    this.options.hub.notifyStatus(sandboxId);
  }

  private async removeRow(sandboxId: string, reason: string): Promise<void> {
    const removed = await this.lock.run(() => this.options.records.delete(sandboxId));
    if (!removed) return;
    this.options.logger.info({ sandbox_id: sandboxId }, reason);
    this.options.hub.notifyDeleted(sandboxId);
  }
}

/** Phases StartSandbox boots from; the others are running (or being deleted). */
const STARTABLE = new Set([
  SandboxPhase.STOPPED,
  SandboxPhase.STOPPING,
  SandboxPhase.STARTING,
  SandboxPhase.ERROR,
]);

/**
 * The stored sandbox updated with what the driver observed; the gateway's own phases win where
 * `phaseAfterSnapshot` says so (DELETING, STOPPING, STOPPED, a STARTING still on its way).
 */
export function sandboxFromSnapshot(sandbox: Sandbox, driverSandbox: compute.DriverSandbox): Sandbox {
  return {
    ...sandbox,
    status: toPublicStatus(driverSandbox.status, sandbox.name),
    phase: phaseAfterSnapshot(sandbox.phase, derivePhase(driverSandbox.status)),
  };
}

function isUnimplemented(error: unknown): boolean {
  if (error instanceof ConnectError) return error.code === Code.Unimplemented;
  return error instanceof OpenShellError && error.code === "unimplemented";
}

function sameObservation(a: Sandbox, b: Sandbox): boolean {
  if (a.phase !== b.phase) return false;
  const ca = a.status?.conditions ?? [];
  const cb = b.status?.conditions ?? [];
  if (ca.length !== cb.length || a.status?.agentPod !== b.status?.agentPod) return false;
  const sa = a.status?.storage;
  const sb = b.status?.storage;
  if (sa?.diskBytes !== sb?.diskBytes || sa?.memorySnapshotBytes !== sb?.memorySnapshotBytes) return false;
  return ca.every((c, i) => {
    const d = cb[i];
    return (
      d && c.type === d.type && c.status === d.status && c.reason === d.reason && c.message === d.message
    );
  });
}

/** Driver errors keep ALREADY_EXISTS and FAILED_PRECONDITION; others become "<action> failed: ...". */
function driverError(error: unknown, action: string): OpenShellError {
  if (error instanceof OpenShellError) return error;
  if (error instanceof ConnectError) {
    if (error.code === Code.AlreadyExists)
      return new OpenShellError("already_exists", error.rawMessage, { cause: error });
    if (error.code === Code.FailedPrecondition) {
      return new OpenShellError("failed_precondition", error.rawMessage, { cause: error });
    }
    if (error.code === Code.InvalidArgument)
      return new OpenShellError("invalid_argument", error.rawMessage, { cause: error });
    if (error.code === Code.Unavailable) {
      return new OpenShellError(
        "unavailable",
        `${action} failed: compute driver unavailable: ${error.rawMessage}`,
        { cause: error },
      );
    }
    return new OpenShellError("internal", `${action} failed: ${error.rawMessage}`, { cause: error });
  }
  return new OpenShellError("internal", `${action} failed: ${describe(error)}`, { cause: error });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
