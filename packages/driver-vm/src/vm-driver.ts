import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { type Logger, OpenShellError } from "@openshell/core";
import {
  type ComputeDriverImpl,
  type DriverStopReason,
  DriverWatchHub,
  setReadyCondition,
} from "@openshell/driver-sdk";
import { compute } from "@openshell/proto";
import type { AcceleratorChoice } from "./accelerator.js";
import { BaseImages } from "./base-images.js";
import { BootConsoleWatch } from "./boot-console-watch.js";
import { HOST_ALIAS } from "./endpoint.js";
import type { GuestTlsFiles } from "./qemu-command.js";
import { type StopTimings, VmInstance } from "./vm-instance.js";
import type { VmRuntime } from "./vm-runtime.js";

export const GUEST_SSH_SOCKET = "/run/openshell/ssh.sock";
const MONITOR_INTERVAL_MS = 500;
const UNREACHABLE_REPORT_INTERVAL_MS = 30_000;
// The guest's init gives its supervisor 10 s after SIGTERM before it kills it and powers off.
const STOP_TIMINGS: StopTimings = { powerdownMs: 5_000, shutdownMs: 12_000, termMs: 5_000 };

export interface VmDriverOptions {
  stateDir: string;
  /** The gateway URL as the guest must dial it (loopback already rewritten). */
  guestEndpoint: string;
  logLevel: string;
  vcpus: number;
  memMib: number;
  runtime: VmRuntime;
  accelerator: AcceleratorChoice;
  qemuBinary: string;
  qemuImg: string;
  tscKhz: number | undefined;
  guestTls?: GuestTlsFiles;
  logger: Logger;
}

interface VmRecord {
  sandbox: compute.DriverSandbox;
  instance: VmInstance;
  monitor: NodeJS.Timeout | undefined;
  /** Follows the boot's console lines until the supervisor's first gateway session (see `boot`). */
  consoleWatch?: BootConsoleWatch | undefined;
  /** Set while the driver itself stops the VM (delete, StopSandbox, shutdown). */
  stopping: boolean;
}

/**
 * The VM compute driver: each sandbox is a QEMU microVM with its own copy-on-write disk. VMs are
 * detached from the driver: a crashed driver or gateway leaves them running, and the next driver
 * adopts them by pidfile. A clean shutdown powers them off and keeps their disks for the next boot.
 */
export class VmDriver {
  private readonly records = new Map<string, VmRecord>();
  private readonly events = new DriverWatchHub("vm");
  private readonly sandboxesDir: string;
  private readonly images: BaseImages;
  private baseDisk = "";

  constructor(private readonly options: VmDriverOptions) {
    this.sandboxesDir = join(options.stateDir, "sandboxes");
    this.images = new BaseImages(options.stateDir);
  }

  /** Finds the sandboxes of earlier runs: adopts running VMs, boots the others again. */
  async load(): Promise<void> {
    mkdirSync(this.sandboxesDir, { recursive: true, mode: 0o700 });
    this.baseDisk = this.images.ensure(this.options.runtime);
    for (const id of readdirSync(this.sandboxesDir)) {
      const instance = new VmInstance(join(this.sandboxesDir, id));
      let sandbox: compute.DriverSandbox;
      try {
        sandbox = fromJsonString(compute.DriverSandboxSchema, readFileSync(instance.paths.record, "utf8"));
      } catch {
        this.options.logger.warn(
          { dir: instance.paths.dir },
          "ignoring a sandbox directory without a readable sandbox.json",
        );
        continue;
      }
      const record: VmRecord = { sandbox, instance, monitor: undefined, stopping: false };
      this.records.set(sandbox.id, record);
      if (sandbox.status?.deleting) {
        void this.finishDelete(record);
        continue;
      }
      const pid = instance.runningPid();
      if (pid) {
        this.options.logger.info({ sandbox_id: sandbox.id, pid }, "adopted a running VM");
        this.watch(record);
        continue;
      }
      if (!instance.hasDisk()) {
        this.setReady(
          record,
          "False",
          "DiskMissing",
          `the sandbox disk ${instance.paths.disk} is missing; delete and recreate the sandbox`,
        );
        continue;
      }
      if (isStopped(sandbox)) continue;
      this.boot(record).catch((error: unknown) =>
        this.setReady(record, "False", "BootFailed", OpenShellError.from(error).message),
      );
    }
    const inUse = new Set(
      [...this.records.values()].map((r) => r.instance.backingFile()).filter((p) => p !== ""),
    );
    this.images.prune(inUse, this.baseDisk);
  }

  impl(): ComputeDriverImpl {
    return {
      getCapabilities: () =>
        create(compute.GetCapabilitiesResponseSchema, {
          driverName: "openshell-driver-vm",
          driverVersion: "0.1.0",
          defaultImage: "",
          supportsGpu: false,
        }),
      validateSandboxCreate: (req) => {
        validateForVm(req.sandbox);
        return {};
      },
      getSandbox: (req) => ({ sandbox: this.require(req.sandboxId, req.sandboxName).sandbox }),
      listSandboxes: () => ({
        sandboxes: [...this.records.values()]
          .map((r) => r.sandbox)
          .sort((a, b) => a.name.localeCompare(b.name)),
      }),
      createSandbox: async (req) => {
        const input = req.sandbox;
        if (!input?.id) throw new OpenShellError("invalid_argument", "sandbox.id is required");
        validateForVm(input);
        if (this.records.has(input.id))
          throw new OpenShellError("already_exists", `sandbox ${input.id} already exists`);
        const sandbox = create(compute.DriverSandboxSchema, {
          ...input,
          status: create(compute.DriverSandboxStatusSchema, { sandboxName: input.name, instanceId: "" }),
        });
        const record: VmRecord = {
          sandbox,
          instance: new VmInstance(join(this.sandboxesDir, sandbox.id)),
          monitor: undefined,
          stopping: false,
        };
        await record.instance.createDisk(this.options.qemuImg, this.baseDisk);
        this.records.set(sandbox.id, record);
        try {
          await this.boot(record);
        } catch (error) {
          this.records.delete(sandbox.id);
          record.instance.remove();
          throw error;
        }
        this.events.platformEvent(
          sandbox.id,
          "Normal",
          "Booting",
          `VM started (${this.options.accelerator.accelerator})`,
        );
        return {};
      },
      startSandbox: async (req) => {
        const record = this.require(req.sandboxId, req.sandboxName);
        await this.boot(record);
        return {};
      },
      stopSandbox: async (req) => {
        const record = this.require(req.sandboxId, req.sandboxName);
        record.stopping = true;
        await record.instance.stop(STOP_TIMINGS);
        record.stopping = false;
        this.setReady(record, "False", "Stopped", "VM is stopped; its disk is kept");
        return {};
      },
      deleteSandbox: async (req) => {
        const record = this.find(req.sandboxId, req.sandboxName);
        if (!record) return { deleted: false };
        if (record.sandbox.status) record.sandbox.status.deleting = true;
        this.setReady(record, "False", "Deleting", "Sandbox is being deleted");
        void this.finishDelete(record);
        return { deleted: true };
      },
      watchSandboxes: (_req, context) =>
        this.events.watch(context.signal, () => [...this.records.values()].map((r) => r.sandbox)),
    };
  }

  /** Clean stop (gateway SIGTERM): power VMs off, keep disks. A vanished gateway leaves them running. */
  async shutdown(reason: DriverStopReason): Promise<void> {
    for (const record of this.records.values()) {
      clearInterval(record.monitor);
      record.consoleWatch?.stop();
    }
    if (reason === "parent-gone") {
      this.options.logger.info("gateway gone: leaving VMs running for the next driver to adopt");
      return;
    }
    await Promise.all(
      [...this.records.values()].map(async (record) => {
        record.stopping = true;
        await record.instance.stop(STOP_TIMINGS);
      }),
    );
  }

  private async boot(record: VmRecord): Promise<void> {
    const { sandbox, instance } = record;
    instance.writeEnvironment(this.guestEnvironment(sandbox));
    const pid = await instance.launch({
      qemuBinary: this.options.qemuBinary,
      accelerator: this.options.accelerator.accelerator,
      vcpus: this.options.vcpus,
      memMib: this.options.memMib,
      kernel: this.options.runtime.kernel,
      initrd: this.options.runtime.initrd,
      tscKhz: this.options.tscKhz,
      guestTls: this.options.guestTls,
    });
    if (sandbox.status) sandbox.status.instanceId = `qemu-${pid}`;
    this.setReady(record, "False", "Starting", "VM is starting");
    this.options.logger.info(
      { sandbox_id: sandbox.id, pid, accelerator: this.options.accelerator.accelerator },
      "VM started",
    );
    this.watch(record);
    this.watchSupervisorLink(record);
  }

  /**
   * Until the supervisor's first session, the boot's milestones become Normal platform events (so
   * `sandbox create` shows where a boot is) and failures to reach the gateway Warning ones (at most
   * one per 30 s), so create says why it waits instead of timing out silently.
   */
  private watchSupervisorLink(record: VmRecord): void {
    record.consoleWatch?.stop();
    let lastUnreachable = 0;
    const event = (type: string, reason: string, message: string) =>
      this.events.platformEvent(record.sandbox.id, type, reason, message);
    const watch = new BootConsoleWatch(record.instance.paths.consoleLog, (news) => {
      switch (news.kind) {
        case "guest-ready":
          event(
            "Normal",
            "GuestReady",
            `guest init ready after ${news.uptimeS.toFixed(1)} s of guest uptime`,
          );
          break;
        case "workspace-seeded":
          event("Normal", "WorkspaceSeeded", "new workspace /sandbox seeded from the image");
          break;
        case "supervisor-started":
          event("Normal", "SupervisorStarted", "supervisor started, connecting to the gateway");
          break;
        case "connected":
          watch.stop();
          break;
        case "unreachable":
          if (Date.now() - lastUnreachable < UNREACHABLE_REPORT_INTERVAL_MS) return;
          lastUnreachable = Date.now();
          event(
            "Warning",
            "GatewayUnreachable",
            `the sandbox cannot reach the gateway at ${this.options.guestEndpoint} (${news.detail}); it keeps retrying. Check the gateway's --grpc-endpoint: the address must be reachable from the VM, where the host is ${HOST_ALIAS}`,
          );
      }
    });
    record.consoleWatch = watch;
    watch.start();
  }

  private guestEnvironment(sandbox: compute.DriverSandbox): Record<string, string> {
    return {
      HOME: "/root",
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      OPENSHELL_ENDPOINT: this.options.guestEndpoint,
      OPENSHELL_SANDBOX_ID: sandbox.id,
      OPENSHELL_SANDBOX: sandbox.name,
      OPENSHELL_SUPERVISOR_TOKEN: sandbox.spec?.supervisorToken ?? "",
      OPENSHELL_SSH_SOCKET_PATH: GUEST_SSH_SOCKET,
      OPENSHELL_LOG_LEVEL: sandbox.spec?.logLevel || this.options.logLevel,
      ...(sandbox.spec?.template?.environment ?? {}),
      ...(sandbox.spec?.environment ?? {}),
    };
  }

  /** Polls the VM's process; an exit the driver did not cause becomes ProcessExited. */
  private watch(record: VmRecord): void {
    clearInterval(record.monitor);
    record.monitor = setInterval(() => {
      if (record.instance.runningPid()) return;
      clearInterval(record.monitor);
      record.monitor = undefined;
      record.consoleWatch?.stop();
      if (record.stopping || record.sandbox.status?.deleting) return;
      const tail = record.instance.consoleTail(15);
      this.setReady(record, "False", "ProcessExited", "VM process exited");
      this.events.platformEvent(
        record.sandbox.id,
        "Warning",
        "ProcessExited",
        `VM process exited; console tail:\n${tail}`,
      );
    }, MONITOR_INTERVAL_MS);
    record.monitor.unref();
  }

  private async finishDelete(record: VmRecord): Promise<void> {
    record.stopping = true;
    clearInterval(record.monitor);
    record.consoleWatch?.stop();
    await record.instance.stop(STOP_TIMINGS);
    record.instance.remove();
    this.records.delete(record.sandbox.id);
    this.events.deleted(record.sandbox.id);
  }

  private setReady(record: VmRecord, status: string, reason: string, message: string): void {
    setReadyCondition(record.sandbox, status, reason, message);
    this.save(record);
    this.events.sandbox(record.sandbox);
  }

  private save(record: VmRecord): void {
    if (!record.instance.hasDisk() && !record.sandbox.status?.deleting) return;
    const tmp = `${record.instance.paths.record}.tmp`;
    writeFileSync(tmp, toJsonString(compute.DriverSandboxSchema, record.sandbox), { mode: 0o600 });
    renameSync(tmp, record.instance.paths.record);
  }

  private find(id: string, name: string): VmRecord | undefined {
    if (id) return this.records.get(id);
    for (const record of this.records.values()) if (record.sandbox.name === name) return record;
    return undefined;
  }

  private require(id: string, name: string): VmRecord {
    const record = this.find(id, name);
    if (!record) throw new OpenShellError("not_found", `sandbox ${id || name} not found`);
    return record;
  }
}

function isStopped(sandbox: compute.DriverSandbox): boolean {
  return sandbox.status?.conditions.some((c) => c.type === "Ready" && c.reason === "Stopped") ?? false;
}

/** Upstream's VM validation: what a microVM cannot honour is refused up front. */
export function validateForVm(sandbox: compute.DriverSandbox | undefined): void {
  if (!sandbox?.spec) throw new OpenShellError("invalid_argument", "sandbox spec is required");
  const template = sandbox.spec.template;
  const refuse = (field: string) => {
    throw new OpenShellError("failed_precondition", `vm sandboxes do not support ${field}`);
  };
  if (sandbox.spec.gpu) refuse("gpu");
  if (template?.image) refuse("template.image");
  if (template?.agentSocketPath) refuse("template.agent_socket_path");
  if (template?.platformConfig && Object.keys(template.platformConfig).length > 0)
    refuse("template.platform_config");
  if (template?.resources) refuse("template.resources");
}
