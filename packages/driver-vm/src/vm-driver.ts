import { execFile } from "node:child_process";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statfsSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { type Logger, OPENSHELL_VERSION, OpenShellError, SerialLock } from "@openshell/core";
import {
  type ComputeDriverImpl,
  type DriverStopReason,
  DriverWatchHub,
  setReadyCondition,
} from "@openshell/driver-sdk";
import { compute } from "@openshell/proto";
import type { AcceleratorChoice } from "./accelerator.js";
import { BaseImages } from "./base-images.js";
import {
  BootConsoleWatch,
  guestExit,
  guestSaidConnected,
  supervisorFatalAtStart,
} from "./boot-console-watch.js";
import { bootDeadlineMs, bootSilenceMs } from "./boot-deadline.js";
import { ConsoleSilenceWatch } from "./console-silence-watch.js";
import {
  type CrashRestartLimits,
  CrashRestartPolicy,
  DEFAULT_CRASH_RESTART_LIMITS,
} from "./crash-restart-policy.js";
import { HOST_ALIAS } from "./endpoint.js";
import { SNAPSHOT_FORMAT, type SnapshotCause, type SnapshotFingerprint } from "./memory-snapshot.js";
import { type GuestTlsFiles, NETDEV_ID } from "./qemu-command.js";
import { type HostCapacity, type VmSize, validateForVm } from "./sandbox-validation.js";
import { identityLine, restoredLine } from "./vm-control-channel.js";
import { fileSize, type StopTimings, VmInstance } from "./vm-instance.js";
import { runtimeKey, type VmRuntime } from "./vm-runtime.js";
import { type VmTemplate, VmTemplates } from "./vm-templates.js";

const run = promisify(execFile);

const GUEST_SSH_SOCKET = "/run/openshell/ssh.sock";
/**
 * The supervisor's workload in a VM: runs until the VM stops. Upstream's VM driver sets
 * `tail -f /dev/null`, but tail opens /dev/null after Landlock, so under a policy whose filesystem
 * paths leave /dev/null out (e.g. read_only [/usr], read_write [/sandbox, /tmp]) it exits at once and
 * the VM restarts; `sleep infinity` needs nothing but its binary.
 */
const GUEST_WORKLOAD = "sleep infinity";
const MONITOR_INTERVAL_MS = 500;
/** A running VM's disk use is measured every 30 s and reported when it moved by 1 MiB or more. */
const STORAGE_CHECK_TICKS = 60;
const STORAGE_REPORT_STEP = 2n ** 20n;
/** How long a gone QEMU's exit status may take to arrive (it is reaped after /proc shows it gone). */
const EXIT_STATUS_WAIT_MS = 2_000;
const UNREACHABLE_REPORT_INTERVAL_MS = 30_000;
// The guest's init gives its supervisor 10 s after SIGTERM before it kills it and powers off.
const STOP_TIMINGS: StopTimings = { powerdownMs: 5_000, shutdownMs: 12_000, termMs: 5_000 };
/** A guest that never booted does not listen to its power button. */
const KILL_TIMINGS: StopTimings = { powerdownMs: 0, shutdownMs: 0, termMs: 2_000 };
const CONSOLE_TAIL_LINES = 15;
/** A fork's init kills what it was copied with before it says "reidentified" (seconds under TCG). */
const FORK_REIDENTIFY_TIMEOUT_MS = 60_000;

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
  /** TCG translation cache per VM, MiB (`--tcg-tb-mib`). */
  tcgTbMib: number | undefined;
  freePageReporting: boolean;
  /** `--templates`: new sandboxes start from a saved template VM when one exists. */
  templates: boolean;
  /** `--boot-timeout-secs`: the boot deadline's base instead of the accelerator's default. */
  bootTimeoutS: number | undefined;
  /** Restart budget for VMs that die unexpectedly (tests shorten it). */
  crashRestartLimits?: CrashRestartLimits;
  guestTls?: GuestTlsFiles;
  logger: Logger;
}

interface VmRecord {
  sandbox: compute.DriverSandbox;
  instance: VmInstance;
  monitor: NodeJS.Timeout | undefined;
  /** Follows the boot's console lines until the supervisor's first gateway session (see `boot`). */
  consoleWatch?: BootConsoleWatch | undefined;
  /**
   * Whether the VM should be running: only then is its exit a crash that gets it restarted. The
   * driver sets "stopped" before every stop it causes (StopSandbox, delete, shutdown, boot timeout).
   */
  wanted: "running" | "stopped";
  crashes: CrashRestartPolicy;
  restartTimer?: NodeJS.Timeout | undefined;
  /** Armed while the VM boots; fires if the guest init never says "ready". */
  bootDeadline?: NodeJS.Timeout | undefined;
  /** Armed with the deadline; fires when the booting guest's console stays silent (a hung boot). */
  bootSilence?: ConsoleSilenceWatch | undefined;
  /** Whether this boot was already retried once after a stall or its deadline (cleared at "ready"). */
  bootRetried: boolean;
  /** Boots and stops of this VM, one at a time. */
  lock: SerialLock;
  /**
   * Whether a stop may save the VM's memory instead of powering it off: only once its supervisor
   * has had a gateway session (its SIGUSR2 handler, which a restore relies on, exists by then).
   */
  snapshotable: boolean;
  /** At create: the template its disk overlays, restored instead of booting (consumed by the first boot). */
  template?: VmTemplate | undefined;
  /** How the last boot went (template or cold, and why): the create's `Booting` event. */
  bootNote: string;
  /** Run once at the supervisor's first session: makes the template this cold create found missing. */
  onFirstSession?: (() => void) | undefined;
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
  private readonly templates: VmTemplates;
  /** Template VMs being made (not sandboxes): stopped at shutdown. */
  private readonly templateVms = new Set<VmInstance>();
  /** Set by `shutdown`: no template is started or finished any more. */
  private shuttingDown = false;
  private baseDisk = "";
  private baseDiskBytes = 0;
  /** `qemu-system-x86_64 --version`'s first line: a snapshot is only restored by the QEMU that saved it. */
  private qemuVersion = "";

  constructor(private readonly options: VmDriverOptions) {
    this.sandboxesDir = join(options.stateDir, "sandboxes");
    this.images = new BaseImages(options.stateDir);
    this.templates = new VmTemplates(join(options.stateDir, "templates"));
  }

  /** Finds the sandboxes of earlier runs: adopts running VMs, boots the others again. */
  async load(): Promise<void> {
    mkdirSync(this.sandboxesDir, { recursive: true, mode: 0o700 });
    this.baseDisk = this.images.ensure(this.options.runtime);
    this.baseDiskBytes = await virtualSize(this.options.qemuImg, this.baseDisk);
    this.qemuVersion = await qemuVersion(this.options.qemuBinary);
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
      const record = this.newRecord(sandbox, instance);
      this.records.set(sandbox.id, record);
      if (sandbox.status?.deleting) {
        void this.finishDelete(record);
        continue;
      }
      const pid = instance.runningPid();
      if (pid) {
        this.options.logger.info({ sandbox_id: sandbox.id, pid }, "adopted a running VM");
        record.snapshotable = guestSaidConnected(instance.paths.consoleLog);
        instance.markBoot();
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
      if (isStopped(sandbox)) {
        record.wanted = "stopped";
        continue;
      }
      this.bootInBackground(record);
    }
    const inUse = new Set(
      [...this.records.values()].map((r) => r.instance.backingFile()).filter((p) => p !== ""),
    );
    const current = this.templates.current(
      this.templateKey(this.defaultSize()),
      this.snapshotFingerprint(this.defaultSize()),
    );
    const templateBackings = this.templates.prune(inUse, new Set(current ? [current.dir] : []));
    this.images.prune(new Set([...inUse, ...templateBackings]), this.baseDisk);
  }

  impl(): ComputeDriverImpl {
    return {
      getCapabilities: () =>
        create(compute.GetCapabilitiesResponseSchema, {
          driverName: "openshell-driver-vm",
          driverVersion: OPENSHELL_VERSION,
          defaultImage: "",
          supportsGpu: false,
          supportsFork: true,
        }),
      validateSandboxCreate: (req) => {
        validateForVm(req.sandbox, this.options, this.hostCapacity());
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
        const size = validateForVm(input, this.options, this.hostCapacity());
        if (this.records.has(input.id))
          throw new OpenShellError("already_exists", `sandbox ${input.id} already exists`);
        const sandbox = create(compute.DriverSandboxSchema, {
          ...input,
          status: create(compute.DriverSandboxStatusSchema, { sandboxName: input.name, instanceId: "" }),
        });
        const record = this.newRecord(sandbox, new VmInstance(join(this.sandboxesDir, sandbox.id)));
        if (req.forkOf) {
          await this.fork(record, size, req.forkOf);
          return {};
        }
        const template = this.templateForCreate(size, record);
        if (template) {
          record.template = template;
          await record.instance.createDisk(this.options.qemuImg, template.disk);
        } else {
          await record.instance.createDisk(this.options.qemuImg, this.baseDisk, size.diskBytes);
        }
        this.records.set(sandbox.id, record);
        try {
          await record.lock.run(() => this.boot(record));
        } catch (error) {
          this.records.delete(sandbox.id);
          record.instance.remove();
          throw error;
        }
        this.events.platformEvent(sandbox.id, "Normal", "Booting", record.bootNote);
        return {};
      },
      startSandbox: async (req) => {
        const record = this.require(req.sandboxId, req.sandboxName);
        if (record.sandbox.status?.deleting)
          throw new OpenShellError("failed_precondition", `sandbox ${record.sandbox.name} is being deleted`);
        record.wanted = "running";
        record.crashes.reset();
        this.cancelRestart(record);
        await record.lock.run(() => this.boot(record));
        return {};
      },
      stopSandbox: async (req) => {
        const record = this.require(req.sandboxId, req.sandboxName);
        await this.stopVm(record, STOP_TIMINGS, "stop");
        const saved = record.instance.snapshot.bytes();
        this.setReady(
          record,
          "False",
          "Stopped",
          saved
            ? `VM is suspended: its memory (${Math.round(saved / 2 ** 20)} MiB snapshot) and disk are kept; start resumes its processes`
            : "VM is stopped; its disk is kept",
        );
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

  /**
   * Clean stop (gateway SIGTERM): save every VM whose supervisor had a session into its memory
   * snapshot (the next driver restores it), power the others off; disks are kept. A vanished
   * gateway leaves them running.
   */
  async shutdown(reason: DriverStopReason): Promise<void> {
    this.shuttingDown = true;
    for (const record of this.records.values()) {
      this.stopWatching(record);
      this.cancelRestart(record);
    }
    // A template VM being made is nobody's sandbox: no later driver would adopt it.
    const templatesEnded = Promise.all([...this.templateVms].map((vm) => vm.stop(KILL_TIMINGS)));
    if (reason === "parent-gone") {
      this.options.logger.info("gateway gone: leaving VMs running for the next driver to adopt");
      await templatesEnded;
      return;
    }
    await Promise.all([
      ...[...this.records.values()].map((record) => this.stopVm(record, STOP_TIMINGS, "shutdown")),
      templatesEnded,
    ]);
    await this.templates.settled();
  }

  private newRecord(sandbox: compute.DriverSandbox, instance: VmInstance): VmRecord {
    return {
      sandbox,
      instance,
      monitor: undefined,
      wanted: "running",
      crashes: new CrashRestartPolicy(this.options.crashRestartLimits ?? DEFAULT_CRASH_RESTART_LIMITS),
      lock: new SerialLock(),
      snapshotable: false,
      bootNote: "",
      bootRetried: false,
    };
  }

  /** What one VM may ask for on this host (ValidateSandboxCreate and CreateSandbox check it). */
  private hostCapacity(): HostCapacity {
    const disk = statfsSync(this.sandboxesDir);
    return {
      cpus: availableParallelism(),
      memMib: Math.floor(totalmem() / 2 ** 20),
      diskFreeBytes: disk.bavail * disk.bsize,
      minDiskBytes: this.baseDiskBytes,
    };
  }

  /** Boots the VM unless the driver stopped wanting it meanwhile (call inside the record's lock). */
  private async boot(record: VmRecord): Promise<void> {
    const { sandbox, instance } = record;
    if (record.wanted !== "running") return;
    // Already running (a start of a running sandbox): nothing to boot, and no boot deadline.
    if (instance.runningPid()) {
      if (!record.monitor) this.watch(record);
      return;
    }
    const size = validateForVm(sandbox, this.options);
    instance.writeEnvironment(this.guestEnvironment(sandbox));
    if (instance.snapshot.exists() && (await this.restore(record, size))) return;
    const template = record.template;
    record.template = undefined;
    if (template && (await this.restoreTemplate(record, size, template))) return;
    record.snapshotable = false;
    const pid = await instance.launch(this.launchOptions(size));
    if (!template && record.bootNote === "")
      record.bootNote = `VM started (${this.options.accelerator.accelerator}), cold boot`;
    if (sandbox.status) sandbox.status.instanceId = `qemu-${pid}`;
    this.setReady(record, "False", "Starting", "VM is starting");
    this.options.logger.info(
      { sandbox_id: sandbox.id, pid, accelerator: this.options.accelerator.accelerator, ...size },
      "VM started",
    );
    this.watch(record);
    this.armBootDeadline(record);
    this.watchSupervisorLink(record);
  }

  /**
   * Restores the VM from its memory snapshot; false (after a Warning event saying why, and with the
   * snapshot removed) when it cannot be, so the caller boots the same disk instead.
   */
  private async restore(record: VmRecord, size: VmSize): Promise<boolean> {
    const { sandbox, instance } = record;
    const check = instance.snapshot.check(this.snapshotFingerprint(size));
    if (!check.usable) return this.snapshotUnusable(record, check.reason);
    const startedAt = Date.now();
    const contentOk = instance.snapshot.verify(check.meta);
    try {
      const pid = await instance.launch({
        ...this.launchOptions(size),
        incomingSnapshot: instance.snapshot.file,
      });
      await instance.finishRestore(contentOk, instance.snapshot, restoredLine);
      if (sandbox.status) sandbox.status.instanceId = `qemu-${pid}`;
    } catch (error) {
      await instance.stop(KILL_TIMINGS);
      return this.snapshotUnusable(record, OpenShellError.from(error).message);
    }
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(2);
    const mib = Math.round(check.meta.bytes / 2 ** 20);
    record.snapshotable = true;
    this.options.logger.info(
      { sandbox_id: sandbox.id, snapshot_bytes: check.meta.bytes, restore_ms: Date.now() - startedAt },
      "VM restored from its memory snapshot",
    );
    this.setReady(
      record,
      "False",
      "Starting",
      "VM restored from its memory snapshot; the supervisor reconnects",
    );
    this.events.platformEvent(
      sandbox.id,
      "Normal",
      "Restored",
      `VM restored from its memory snapshot (${mib} MiB) in ${seconds} s; its processes continue`,
    );
    this.watch(record);
    return true;
  }

  /**
   * A new sandbox (`record`) from a running one's VM (ForkSandbox): the source pauses while its
   * memory and disk are copied (`VmInstance.copyInto`) and runs on; the copy is restored with its
   * network link down, gets `reidentify` (its init kills every process it was copied with, takes the
   * new identity and starts a new supervisor), and its link comes up once the init says
   * "reidentified", so no copied process ever reaches the gateway with the source's credentials.
   * Then it is a boot like any other (console milestones, boot deadline). Nothing is left behind
   * on failure.
   */
  private async fork(record: VmRecord, size: VmSize, sourceId: string): Promise<void> {
    const { sandbox, instance } = record;
    const source = this.records.get(sourceId);
    if (!source)
      throw new OpenShellError("not_found", `sandbox ${sourceId} to fork is not one of this driver's`);
    const sourceSize = validateForVm(source.sandbox, this.options);
    if (sourceSize.memMib !== size.memMib || sourceSize.vcpus !== size.vcpus)
      throw new OpenShellError(
        "invalid_argument",
        `a fork has its source's size (${sourceSize.vcpus} vCPUs, ${sourceSize.memMib} MiB), not ${size.vcpus} vCPUs and ${size.memMib} MiB`,
      );
    if (!source.instance.runningPid() || !source.snapshotable || source.wanted !== "running")
      throw new OpenShellError(
        "failed_precondition",
        `sandbox ${source.sandbox.name} is not running with its supervisor connected; only a READY sandbox can be forked`,
      );
    this.records.set(sandbox.id, record);
    const startedAt = Date.now();
    try {
      const copied = await source.lock.run(() => source.instance.copyInto(instance));
      instance.writeEnvironment(this.guestEnvironment(sandbox));
      await record.lock.run(async () => {
        const pid = await instance.launch({
          ...this.launchOptions(size),
          incomingSnapshot: instance.snapshot.file,
        });
        if (sandbox.status) sandbox.status.instanceId = `qemu-${pid}`;
        const offset = fileSize(instance.paths.consoleLog);
        // The copy was written moments ago by this driver: no hash to check.
        await instance.finishRestore(
          Promise.resolve(true),
          instance.snapshot,
          () => identityLine(readFileSync(instance.paths.env), this.guestTlsContents(), "reidentify"),
          (qmp) => qmp.execute("set_link", { name: NETDEV_ID, up: false }),
        );
        await instance.waitForConsole("OPENSHELL-VM-INIT reidentified", offset, FORK_REIDENTIFY_TIMEOUT_MS);
        await instance.setLink(true);
      });
      const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
      record.bootNote = `VM copied from sandbox ${source.sandbox.name} (memory ${mib(copied.memoryBytes)} MiB, disk ${mib(copied.diskBytes)} MiB; the source paused ${(copied.pausedMs / 1000).toFixed(2)} s) in ${((Date.now() - startedAt) / 1000).toFixed(2)} s; its processes start anew with the new identity`;
      this.options.logger.info(
        { sandbox_id: sandbox.id, source_id: sourceId, fork_ms: Date.now() - startedAt, ...copied },
        "VM forked",
      );
    } catch (error) {
      this.records.delete(sandbox.id);
      await instance.stop(KILL_TIMINGS);
      instance.remove();
      throw OpenShellError.from(error);
    }
    this.setReady(record, "False", "Starting", "VM copied; its supervisor starts with the new identity");
    this.watch(record);
    this.armBootDeadline(record);
    this.watchSupervisorLink(record);
    this.events.platformEvent(sandbox.id, "Normal", "Forked", record.bootNote);
  }

  /**
   * The template a new sandbox of `size` starts from, or undefined (then a cold boot, and a
   * template is made in the background when none exists for this shape). `record.bootNote` says
   * which path and why: what `sandbox create` shows.
   */
  private templateForCreate(size: VmSize, record: VmRecord): VmTemplate | undefined {
    const accel = this.options.accelerator.accelerator;
    if (!this.options.templates) {
      record.bootNote = `VM started (${accel}), cold boot: templates are off (--templates)`;
      return undefined;
    }
    if (size.diskBytes !== undefined && size.diskBytes !== this.baseDiskBytes) {
      record.bootNote = `VM started (${accel}), cold boot: the sandbox's disk size differs from the template's`;
      return undefined;
    }
    const key = this.templateKey(size);
    const template = this.templates.current(key, this.snapshotFingerprint(size));
    if (template) return template;
    const building = this.templates.isBuilding(key);
    record.bootNote = `VM started (${accel}), cold boot: no template for this runtime and size yet (${building ? "being made" : "made after this boot"})`;
    // After this sandbox's boot, not beside it: two TCG guests booting at once on a small host
    // would make this first create wait for both.
    if (!building)
      record.onFirstSession = () => {
        if (this.shuttingDown) return;
        this.templates.build(
          key,
          (dir) => this.buildTemplate(dir, size),
          (error) =>
            this.options.logger.warn(
              { reason: OpenShellError.from(error).message },
              "making a VM template failed",
            ),
        );
      };
    return undefined;
  }

  /**
   * Boots a template VM (`openshell.template=1`: the init stops before the sandbox's environment
   * with the supervisor started and waiting, no key made, its clock ahead; see the init) until it
   * waits for its identity, then saves it.
   */
  private async buildTemplate(dir: string, size: VmSize): Promise<void> {
    const startedAt = Date.now();
    const vm = new VmInstance(dir);
    this.templateVms.add(vm);
    try {
      await vm.createDisk(this.options.qemuImg, this.baseDisk);
      vm.writeEnvironment({ OPENSHELL_TEMPLATE: "1" });
      await vm.launch({ ...this.launchOptions(size), template: true });
      // A shutdown that came while QEMU was starting did not see its pid.
      if (this.shuttingDown) throw new OpenShellError("unavailable", "the driver is stopping");
      await vm.waitForConsole(
        "OPENSHELL-VM-INIT template waiting",
        0,
        bootDeadlineMs({
          accelerator: this.options.accelerator.accelerator,
          baseSeconds: this.options.bootTimeoutS,
          loadAverage: loadavg()[0] ?? 0,
          cpus: availableParallelism(),
          concurrentBoots: 2,
        }),
      );
      const meta = await vm.suspend(this.snapshotFingerprint(size), "template");
      this.options.logger.info(
        { dir, snapshot_bytes: meta.bytes, build_ms: Date.now() - startedAt },
        "VM template made",
      );
    } catch (error) {
      await vm.stop(KILL_TIMINGS);
      throw error;
    } finally {
      this.templateVms.delete(vm);
    }
  }

  /**
   * A new sandbox from its template: QEMU loads the template's memory (the template stays), then
   * the guest gets its identity over the control channel and boots on from there (environment,
   * firewall, workspace, supervisor: the usual console milestones and boot deadline). False (after
   * a Warning event; the template loses its snapshot, a new one is made next time) when it cannot
   * be restored: the caller boots the disk, an overlay of the template's, which is complete.
   */
  private async restoreTemplate(record: VmRecord, size: VmSize, template: VmTemplate): Promise<boolean> {
    const { sandbox, instance } = record;
    const startedAt = Date.now();
    const contentOk = template.snapshot.verify(template.meta);
    try {
      const pid = await instance.launch({
        ...this.launchOptions(size),
        incomingSnapshot: template.snapshot.file,
      });
      await instance.finishRestore(contentOk, undefined, () =>
        identityLine(readFileSync(instance.paths.env), this.guestTlsContents()),
      );
      if (sandbox.status) sandbox.status.instanceId = `qemu-${pid}`;
    } catch (error) {
      await instance.stop(KILL_TIMINGS);
      const reason = OpenShellError.from(error).message;
      template.snapshot.remove();
      this.options.logger.warn({ sandbox_id: sandbox.id, reason }, "VM template unusable");
      record.bootNote = `VM started (${this.options.accelerator.accelerator}), cold boot: the template could not be restored (${reason})`;
      this.events.platformEvent(sandbox.id, "Warning", "TemplateUnusable", record.bootNote);
      return false;
    }
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(2);
    record.bootNote = `VM restored from its template snapshot (${Math.round(template.meta.bytes / 2 ** 20)} MiB) in ${seconds} s, then given its identity (${this.options.accelerator.accelerator})`;
    this.options.logger.info(
      { sandbox_id: sandbox.id, restore_ms: Date.now() - startedAt, template: template.dir },
      "VM restored from its template",
    );
    this.setReady(record, "False", "Starting", "VM is starting (restored from its template)");
    this.watch(record);
    this.armBootDeadline(record);
    this.watchSupervisorLink(record);
    return true;
  }

  private guestTlsContents(): { ca: Buffer; cert: Buffer; key: Buffer } | undefined {
    const tls = this.options.guestTls;
    if (!tls) return undefined;
    return { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  }

  /** The size of a sandbox that asks for none (the driver's defaults). */
  private defaultSize(): VmSize {
    return { vcpus: this.options.vcpus, memMib: this.options.memMib, diskBytes: undefined };
  }

  private templateKey(size: VmSize): string {
    return VmTemplates.key(this.snapshotFingerprint(size), {
      diskBytes: this.baseDiskBytes,
      tls: this.options.guestTls !== undefined,
    });
  }

  private snapshotUnusable(record: VmRecord, reason: string): false {
    record.instance.snapshot.remove();
    const message = `the VM's memory snapshot cannot be restored (${reason}); booting its disk instead: files in the workspace are kept, running processes are not`;
    this.options.logger.warn({ sandbox_id: record.sandbox.id, reason }, "memory snapshot unusable");
    this.events.platformEvent(record.sandbox.id, "Warning", "SnapshotUnusable", message);
    return false;
  }

  private snapshotFingerprint(size: VmSize): SnapshotFingerprint {
    return {
      format: SNAPSHOT_FORMAT,
      runtimeKey: runtimeKey(this.options.runtime),
      qemuVersion: this.qemuVersion,
      accelerator: this.options.accelerator.accelerator,
      memMib: size.memMib,
      vcpus: size.vcpus,
      freePageReporting: this.options.freePageReporting,
    };
  }

  private launchOptions(size: VmSize) {
    return {
      qemuBinary: this.options.qemuBinary,
      accelerator: this.options.accelerator.accelerator,
      vcpus: size.vcpus,
      memMib: size.memMib,
      kernel: this.options.runtime.kernel,
      initrd: this.options.runtime.initrd,
      tscKhz: this.options.tscKhz,
      tcgTbMib: this.options.tcgTbMib,
      freePageReporting: this.options.freePageReporting,
      guestTls: this.options.guestTls,
    };
  }

  private bootInBackground(record: VmRecord): void {
    record.lock
      .run(() => this.boot(record))
      .catch((error: unknown) =>
        this.setReady(record, "False", "BootFailed", OpenShellError.from(error).message),
      );
  }

  /**
   * Every stop the driver causes: no restart, no boot deadline, then the VM's own stop. With
   * `saveAs`, a VM whose supervisor had a session is saved into its memory snapshot instead of
   * powered off; a save that fails is a Warning event and the VM is powered off as before.
   */
  private async stopVm(record: VmRecord, timings: StopTimings, saveAs?: SnapshotCause): Promise<void> {
    record.wanted = "stopped";
    this.cancelRestart(record);
    this.stopWatching(record);
    await record.lock.run(async () => {
      // A boot that held the lock may have armed its watchers after the line above.
      this.stopWatching(record);
      if (saveAs && record.snapshotable && record.instance.runningPid()) {
        try {
          const size = validateForVm(record.sandbox, this.options);
          const meta = await record.instance.suspend(this.snapshotFingerprint(size), saveAs);
          this.options.logger.info(
            {
              sandbox_id: record.sandbox.id,
              snapshot_bytes: meta.bytes,
              save_ms: meta.saveMs,
              cause: saveAs,
            },
            "VM saved into its memory snapshot",
          );
          this.events.platformEvent(
            record.sandbox.id,
            "Normal",
            "Suspended",
            `VM saved into its memory snapshot (${Math.round(meta.bytes / 2 ** 20)} MiB) in ${(meta.saveMs / 1000).toFixed(2)} s and stopped`,
          );
          return;
        } catch (error) {
          const reason = OpenShellError.from(error).message;
          this.options.logger.warn({ sandbox_id: record.sandbox.id, reason }, "saving the VM failed");
          this.events.platformEvent(
            record.sandbox.id,
            "Warning",
            "SnapshotFailed",
            `the VM could not be saved (${reason}); powering it off instead (its disk is kept)`,
          );
        }
      }
      await record.instance.stop(timings);
    });
  }

  private stopWatching(record: VmRecord): void {
    clearInterval(record.monitor);
    record.monitor = undefined;
    this.disarmBootDeadline(record);
    record.consoleWatch?.stop();
  }

  private cancelRestart(record: VmRecord): void {
    clearTimeout(record.restartTimer);
    record.restartTimer = undefined;
  }

  /**
   * A boot gets a deadline suited to the accelerator and the host's load (see boot-deadline.ts), and
   * a third of it (at least 10 s: `bootSilenceMs`) as the longest its console may stay silent: a guest whose kernel or init hung
   * prints nothing more, while a slow boot still prints its milestones. The first boot that stalls
   * or misses its deadline is killed and booted again (a rare TCG guest hang was seen before the
   * init's first line); the second time the sandbox is in error with the console's tail.
   */
  private armBootDeadline(record: VmRecord): void {
    this.disarmBootDeadline(record);
    const booting = [...this.records.values()].filter((r) => r.bootDeadline !== undefined).length + 1;
    const deadlineMs = bootDeadlineMs({
      accelerator: this.options.accelerator.accelerator,
      baseSeconds: this.options.bootTimeoutS,
      loadAverage: loadavg()[0] ?? 0,
      cpus: availableParallelism(),
      concurrentBoots: booting,
    });
    const accel = this.options.accelerator.accelerator;
    record.bootDeadline = setTimeout(() => {
      void this.bootFailed(
        record,
        `did not finish booting within ${Math.round(deadlineMs / 1000)} s (${accel})`,
      );
    }, deadlineMs);
    record.bootDeadline.unref();
    const silenceMs = bootSilenceMs(deadlineMs);
    record.bootSilence = new ConsoleSilenceWatch(record.instance.paths.consoleLog, silenceMs, () => {
      void this.bootFailed(
        record,
        `stopped making progress while booting: its console was silent for ${Math.round(silenceMs / 1000)} s (${accel})`,
      );
    });
    record.bootSilence.start();
  }

  private disarmBootDeadline(record: VmRecord): void {
    clearTimeout(record.bootDeadline);
    record.bootDeadline = undefined;
    record.bootSilence?.stop();
    record.bootSilence = undefined;
  }

  private async bootFailed(record: VmRecord, what: string): Promise<void> {
    if (!record.bootDeadline) return; // the other watch fired first, or the boot ended meanwhile
    this.disarmBootDeadline(record);
    const vcpus = await record.instance.vcpuState().catch((error: Error) => `unknown (${error.message})`);
    const retry = !record.bootRetried;
    this.options.logger.warn({ sandbox_id: record.sandbox.id, cause: what, vcpus, retry }, "VM boot failed");
    const tail = () => record.instance.consoleTail(CONSOLE_TAIL_LINES) || "(empty)";
    if (!retry) {
      await this.stopVm(record, KILL_TIMINGS);
      const message = `VM ${what}; it was booted again once already, so it was stopped; console tail:\n${tail()}`;
      this.setReady(record, "False", "BootTimeout", message);
      this.events.platformEvent(record.sandbox.id, "Warning", "BootTimeout", message);
      return;
    }
    await record.lock.run(async () => {
      if (record.wanted !== "running" || record.sandbox.status?.deleting) return; // stopped meanwhile
      this.stopWatching(record);
      await record.instance.stop(KILL_TIMINGS);
      record.bootRetried = true;
      const message = `VM ${what} and was killed; booting it again (once)`;
      this.setReady(record, "False", "Starting", message);
      this.events.platformEvent(
        record.sandbox.id,
        "Warning",
        "BootRetry",
        `${message}. vCPUs: ${vcpus}; console tail:\n${tail()}`,
      );
      await this.boot(record);
    });
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
          this.disarmBootDeadline(record);
          record.bootRetried = false;
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
          record.snapshotable = true;
          watch.stop();
          record.onFirstSession?.();
          record.onFirstSession = undefined;
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
      OPENSHELL_SANDBOX_COMMAND: GUEST_WORKLOAD,
      OPENSHELL_LOG_LEVEL: sandbox.spec?.logLevel || this.options.logLevel,
      ...(sandbox.spec?.template?.environment ?? {}),
      ...(sandbox.spec?.environment ?? {}),
    };
  }

  /** Polls the VM's process; an exit the driver did not cause is a crash (see `crashed`). */
  private watch(record: VmRecord): void {
    clearInterval(record.monitor);
    let ticks = 0;
    record.monitor = setInterval(() => {
      if (record.instance.runningPid()) {
        if (++ticks % STORAGE_CHECK_TICKS === 0 && this.measureStorage(record)) {
          this.save(record);
          this.events.sandbox(record.sandbox);
        }
        return;
      }
      this.stopWatching(record);
      record.instance.releaseQmpDir();
      void record.instance.exitStatusKnown(EXIT_STATUS_WAIT_MS).then(() => {
        if (record.wanted !== "running" || record.sandbox.status?.deleting) return;
        if (record.monitor || record.restartTimer) return; // started again meanwhile
        this.crashed(record);
      });
    }, MONITOR_INTERVAL_MS);
    record.monitor.unref();
  }

  /**
   * A VM that should be running is gone. A supervisor that failed closed (the guest init reports its
   * exit code SUPERVISOR_EXIT.failedClosed after its fatal line) would fail the same way again: the
   * sandbox goes to ERROR at once with its reason and is not restarted. Otherwise (killed, OOM, QEMU
   * or guest failure, and the sandbox's workload exiting, which ends its supervisor as a container's
   * entrypoint ends the container) it boots again from its disk after a growing delay, and gives up
   * (ProcessExited, an error) after too many of these in the crash window.
   */
  private crashed(record: VmRecord): void {
    const { consoleLog } = record.instance.paths;
    const exit = guestExit(consoleLog);
    const tail = record.instance.consoleTail(CONSOLE_TAIL_LINES);
    if (exit.kind === "failed-closed") {
      record.wanted = "stopped";
      const message = `the sandbox supervisor failed closed, so the VM was not restarted: ${exit.reason}. Fix the cause, then start the sandbox again or delete it`;
      this.options.logger.warn(
        { sandbox_id: record.sandbox.id, reason: exit.reason },
        "supervisor failed closed",
      );
      this.setReady(record, "False", "SupervisorFailedClosed", message);
      this.events.platformEvent(
        record.sandbox.id,
        "Warning",
        "SupervisorFailedClosed",
        `${message}; console tail:\n${tail}`,
      );
      return;
    }
    // A supervisor that stopped at start says why.
    const fatal = supervisorFatalAtStart(consoleLog);
    const what =
      exit.kind === "workload-exited"
        ? exit.detail
        : `VM exited unexpectedly (${record.instance.exitCause()}${fatal ? `; the supervisor stopped: ${fatal}` : ""})`;
    const decision = record.crashes.onCrash();
    this.options.logger.warn(
      { sandbox_id: record.sandbox.id, cause: what, ...decision },
      "VM exited unexpectedly",
    );
    if (!decision.restart) {
      record.wanted = "stopped";
      const message = `${what}, ${decision.crashes} times within ${decision.windowMs / 60_000} minutes; not restarting it again. Start it again or delete it`;
      this.setReady(record, "False", "ProcessExited", message);
      this.events.platformEvent(
        record.sandbox.id,
        "Warning",
        "ProcessExited",
        `${message}; console tail:\n${tail}`,
      );
      return;
    }
    const message = `${what}; restarting, attempt ${decision.attempt} of ${decision.of}`;
    // Reason Starting: the sandbox is provisioning again, not in error, while it waits and boots.
    this.setReady(record, "False", "Starting", message);
    this.events.platformEvent(
      record.sandbox.id,
      "Warning",
      "Restarting",
      `${message} in ${decision.delayMs / 1000} s; console tail:\n${tail}`,
    );
    this.cancelRestart(record);
    record.restartTimer = setTimeout(() => {
      record.restartTimer = undefined;
      if (record.wanted === "running") this.bootInBackground(record);
    }, decision.delayMs);
    record.restartTimer.unref();
  }

  private async finishDelete(record: VmRecord): Promise<void> {
    await this.stopVm(record, STOP_TIMINGS);
    record.instance.remove();
    this.records.delete(record.sandbox.id);
    this.events.deleted(record.sandbox.id);
  }

  private setReady(record: VmRecord, status: string, reason: string, message: string): void {
    setReadyCondition(record.sandbox, status, reason, message);
    this.measureStorage(record);
    this.save(record);
    this.events.sandbox(record.sandbox);
  }

  /**
   * What the sandbox keeps on this host (`sandbox get`): its overlay's allocated bytes and its
   * memory snapshot's size. True when either moved by at least STORAGE_REPORT_STEP since the last
   * report (the monitor then reports it; every status change does anyway).
   */
  private measureStorage(record: VmRecord): boolean {
    const status = record.sandbox.status;
    if (!status) return false;
    const next = create(compute.DriverSandboxStorageSchema, {
      diskBytes: BigInt(allocatedBytes(record.instance.paths.disk)),
      memorySnapshotBytes: BigInt(record.instance.snapshot.bytes()),
    });
    const before = status.storage;
    status.storage = next;
    if (!before) return true;
    const moved = (a: bigint, b: bigint) => (a > b ? a - b : b - a) >= STORAGE_REPORT_STEP;
    return (
      moved(next.diskBytes, before.diskBytes) || moved(next.memorySnapshotBytes, before.memorySnapshotBytes)
    );
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

/** The bytes a file takes on its filesystem (a sparse overlay's allocated blocks), 0 without it. */
function allocatedBytes(file: string): number {
  try {
    return statSync(file).blocks * 512;
  } catch {
    return 0;
  }
}

function isStopped(sandbox: compute.DriverSandbox): boolean {
  return sandbox.status?.conditions.some((c) => c.type === "Ready" && c.reason === "Stopped") ?? false;
}

async function qemuVersion(qemuBinary: string): Promise<string> {
  try {
    const { stdout } = await run(qemuBinary, ["--version"]);
    return stdout.split("\n")[0]?.trim() ?? "";
  } catch {
    return "";
  }
}

/** A qcow2 image's virtual size in bytes (a sandbox disk cannot be smaller than its base). */
async function virtualSize(qemuImg: string, image: string): Promise<number> {
  const { stdout } = await run(qemuImg, ["info", "-U", "--output=json", image]).catch((error: Error) => {
    throw new OpenShellError("internal", `qemu-img cannot read the base image ${image}: ${error.message}`);
  });
  return Number((JSON.parse(stdout) as { "virtual-size": number })["virtual-size"]);
}
