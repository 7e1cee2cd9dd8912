import { execFile, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { copyFile } from "node:fs/promises";
import { constants as osConstants, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { OpenShellError, signalIfRunning, sleep, waitUntilGone } from "@openshell/core";
import { consoleTail } from "./console-text.js";
import {
  MemorySnapshot,
  type SnapshotCause,
  type SnapshotFingerprint,
  type SnapshotMeta,
} from "./memory-snapshot.js";
import { migrationWriteCommand, NETDEV_ID, type QemuLaunch, qemuArgs } from "./qemu-command.js";
import { QmpClient, qmpCommand } from "./qmp-client.js";
import { clockLine, VmControlChannel } from "./vm-control-channel.js";

/** QEMU writes its pidfile within milliseconds; a loaded host can take seconds. */
const PIDFILE_TIMEOUT_MS = 30_000;

const run = promisify(execFile);
const POWER_BUTTON_REPEAT_MS = 1_000;
/** sun_path holds 108 bytes with its NUL; stay a little below. */
const MAX_SOCKET_PATH = 104;
/** How long the guest gets to flush its page cache before a save (it goes on without). */
const SAVE_SYNC_TIMEOUT_MS = 10_000;
/** Writing a few hundred MB of guest memory; generous for a loaded host. */
const SAVE_TIMEOUT_MS = 180_000;
/** Loading a snapshot into a new QEMU. */
const RESTORE_TIMEOUT_MS = 180_000;
/** QEMU 7.2 throttles migration to 128 MiB/s by default, even into a local file: lift it. */
const MIGRATION_MAX_BANDWIDTH = 10 * 2 ** 30;
const POLL_MS = 25;

/** How a QEMU this driver started ended (unknown for adopted ones). */
export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StopTimings {
  /** How long the power button is pressed (again every second) before QEMU gets SIGTERM. */
  powerdownMs: number;
  /** Once the guest says it is stopping: how long it gets to stop its supervisor and power off. */
  shutdownMs: number;
  /** After SIGTERM, before SIGKILL. */
  termMs: number;
}

/** Where one sandbox lives on disk: `<state>/sandboxes/<id>/`. */
export class VmPaths {
  constructor(readonly dir: string) {}
  get record() {
    return join(this.dir, "sandbox.json");
  }
  get disk() {
    return join(this.dir, "disk.qcow2");
  }
  get env() {
    return join(this.dir, "env");
  }
  get consoleLog() {
    return join(this.dir, "console.log");
  }
  get qemuLog() {
    return join(this.dir, "qemu.log");
  }
  get pidFile() {
    return join(this.dir, "qemu.pid");
  }
  /** The QMP socket's place beside the disk; used when it fits sun_path (see `qmpSocket`). */
  get qmpSocketBesideDisk() {
    return join(this.dir, "qmp.sock");
  }
  /** Where a private directory for the QMP socket is recorded when the sandbox dir's path is too long. */
  get qmpDirRecord() {
    return join(this.dir, "qmp-dir");
  }
  /** Base path of the control channel's FIFOs (`control.in`, `control.out`). */
  get control() {
    return join(this.dir, "control");
  }
  /** The base image this sandbox's disk overlays (written at create). */
  get backing() {
    return join(this.dir, "backing");
  }
}

/**
 * One sandbox's VM: its copy-on-write disk, its QEMU process (found again by pidfile after a driver
 * restart, never started twice) and its clean or forced stop.
 */
export class VmInstance {
  readonly paths: VmPaths;
  /** How the QEMU this driver last launched ended; undefined while it runs or when adopted. */
  private lastExit: QemuExit | undefined;
  /** Settles when the QEMU this driver last launched has been reaped (its exit status is known). */
  private reaped: Promise<void> = Promise.resolve();
  /** Log sizes when the current QEMU was launched or adopted: what it wrote starts there. */
  private bootOffsets = { console: 0, qemuLog: 0 };

  readonly snapshot: MemorySnapshot;
  readonly control: VmControlChannel;

  constructor(dir: string) {
    this.paths = new VmPaths(dir);
    this.snapshot = new MemorySnapshot(dir);
    this.control = new VmControlChannel(this.paths.control);
  }

  /**
   * Creates the sandbox's disk as a qcow2 overlay of the runtime's base image (instant), of
   * `sizeBytes` virtual size when given (the guest grows its filesystem to fill it).
   */
  async createDisk(qemuImg: string, baseDisk: string, sizeBytes?: number): Promise<void> {
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 });
    if (existsSync(this.paths.disk)) return;
    const size = sizeBytes === undefined ? [] : [String(sizeBytes)];
    await run(qemuImg, [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-F",
      "qcow2",
      "-b",
      baseDisk,
      this.paths.disk,
      ...size,
    ]).catch((error: Error) => {
      throw new OpenShellError("internal", `qemu-img could not create the sandbox disk: ${error.message}`);
    });
    writeFileSync(this.paths.backing, baseDisk);
  }

  backingFile(): string {
    try {
      return readFileSync(this.paths.backing, "utf8").trim();
    } catch {
      return "";
    }
  }

  hasDisk(): boolean {
    return existsSync(this.paths.disk);
  }

  /**
   * The environment the guest init exports (fw_cfg file of KEY=VALUE lines; only root can read it
   * in the guest). Values are written unchanged: one with a line break was refused at create.
   */
  writeEnvironment(env: Record<string, string>): void {
    const lines = Object.entries(env).map(([key, value]) => {
      if (/[\r\n\0]/.test(value))
        throw new OpenShellError(
          "invalid_argument",
          `environment variable ${key} contains a line break or NUL`,
        );
      return `${key}=${value}`;
    });
    writeFileSync(this.paths.env, `${lines.join("\n")}\n`, { mode: 0o600 });
  }

  /**
   * The QMP socket of this sandbox's QEMU: beside its disk (a 0700 directory) when that path fits
   * sun_path, else in a private 0700 directory made by mkdtemp, recorded in `qmp-dir` so a later
   * driver finds it. `create` makes that directory if needed; without it, "" when there is none.
   */
  qmpSocket(create = false): string {
    const beside = this.paths.qmpSocketBesideDisk;
    if (Buffer.byteLength(beside) < MAX_SOCKET_PATH) return beside;
    let dir = "";
    try {
      dir = readFileSync(this.paths.qmpDirRecord, "utf8").trim();
    } catch {
      // none yet
    }
    if (dir && isPrivateDirectory(dir)) return join(dir, "qmp.sock");
    if (!create) return "";
    dir = mkdtempSync(join(tmpdir(), "openshell-vm-"));
    writeFileSync(this.paths.qmpDirRecord, dir, { mode: 0o600 });
    return join(dir, "qmp.sock");
  }

  /** The QEMU pid if this sandbox's QEMU is running (checked against /proc, not just the pidfile). */
  runningPid(): number | undefined {
    let pid: number;
    try {
      pid = Number(readFileSync(this.paths.pidFile, "utf8").trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return cmdline.includes(this.paths.disk) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Starts QEMU detached (it outlives the driver) and resolves once it wrote its pidfile. A QEMU
   * that has not written it by `pidfileTimeoutMs` is killed before the launch fails, so no VM runs
   * that the driver does not track.
   */
  async launch(
    launch: Omit<QemuLaunch, "disk" | "envFile" | "consoleLog" | "pidFile" | "qmpSocket" | "controlPipe">,
    pidfileTimeoutMs = PIDFILE_TIMEOUT_MS,
  ): Promise<number> {
    const existing = this.runningPid();
    if (existing) return existing;
    await this.control.ensure();
    this.markBoot();
    rmSync(this.paths.pidFile, { force: true });
    const qmpSocket = this.qmpSocket(true);
    rmSync(qmpSocket, { force: true });
    const args = qemuArgs({
      ...launch,
      disk: this.paths.disk,
      envFile: this.paths.env,
      consoleLog: this.paths.consoleLog,
      pidFile: this.paths.pidFile,
      qmpSocket,
      controlPipe: this.paths.control,
    });
    const log = openSync(this.paths.qemuLog, "a");
    const child = spawn(launch.qemuBinary, args, { detached: true, stdio: ["ignore", log, log] });
    closeSync(log);
    child.unref();
    this.reaped = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        this.lastExit = { code, signal };
        resolve();
      }),
    );
    const failed = new Promise<never>((_, reject) => {
      child.once("error", (error) =>
        reject(new OpenShellError("internal", `cannot start ${launch.qemuBinary}: ${error.message}`)),
      );
      child.once("exit", (code) =>
        reject(new OpenShellError("internal", `QEMU exited at start (code ${code}): ${this.qemuLogTail()}`)),
      );
    });
    const started = (async () => {
      const deadline = Date.now() + pidfileTimeoutMs;
      while (Date.now() < deadline) {
        const pid = this.runningPid();
        if (pid) return pid;
        await sleep(50);
      }
      try {
        if (child.pid) process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      throw new OpenShellError(
        "internal",
        `QEMU did not write its pidfile within ${pidfileTimeoutMs / 1000} s (killed): ${this.qemuLogTail()}`,
      );
    })();
    return Promise.race([started, failed]);
  }

  /** Remembers where the current QEMU's output starts (called at launch and when adopting one). */
  markBoot(): void {
    this.lastExit = undefined;
    this.bootOffsets = { console: fileSize(this.paths.consoleLog), qemuLog: fileSize(this.paths.qemuLog) };
  }

  /**
   * Waits (at most `timeoutMs`) until the exit status of the QEMU this driver launched is known: a
   * killed process leaves /proc's cmdline (a zombie) before Node reaps it and reports its signal.
   */
  async exitStatusKnown(timeoutMs: number): Promise<void> {
    await Promise.race([this.reaped, sleep(timeoutMs)]);
  }

  /**
   * Why the current QEMU is gone, in a few words: the signal that killed it (from its exit status
   * when this driver started it, else from QEMU's own "terminating on signal" line), its exit
   * code, or the guest's power-off.
   */
  exitCause(): string {
    const qemuSaid = /terminating on signal (\d+)/.exec(
      readFrom(this.paths.qemuLog, this.bootOffsets.qemuLog),
    );
    if (this.lastExit?.signal) return `signal ${this.lastExit.signal}`;
    if (qemuSaid) return `signal ${signalName(Number(qemuSaid[1]))}`;
    if (this.lastExit?.code) return `exit code ${this.lastExit.code}`;
    if (readFrom(this.paths.consoleLog, this.bootOffsets.console).includes("OPENSHELL-VM-INIT poweroff"))
      return "the guest powered itself off";
    return this.lastExit ? "exit code 0" : "cause unknown";
  }

  /**
   * Saves the running VM into its memory snapshot and ends QEMU: the guest flushes its page cache
   * (so the disk alone is complete should the snapshot be unusable later), QEMU stops the vCPUs
   * and streams RAM and device state into `memory.snap` (0600), the record is written with the
   * file's SHA-256, and QEMU quits (its memory and CPU are freed; the overlay stays as it is).
   * On any failure before QEMU quits the guest is resumed and the error thrown: the caller powers
   * it off instead.
   */
  async suspend(fingerprint: SnapshotFingerprint, cause: SnapshotCause): Promise<SnapshotMeta> {
    if (!this.runningPid()) throw new OpenShellError("failed_precondition", "the VM is not running");
    const pid = this.runningPid();
    const qmpSocket = this.qmpSocket();
    if (!pid || !qmpSocket) throw new OpenShellError("failed_precondition", "the VM is not running");
    const startedAt = Date.now();
    this.snapshot.remove();
    await this.syncGuest(startedAt);
    const qmp = await QmpClient.connect(qmpSocket);
    const paused = { stopped: false };
    try {
      await saveStopped(qmp, this.snapshot, paused);
      await qmp.execute("quit").catch(() => undefined);
    } catch (error) {
      if (paused.stopped) await qmp.execute("cont").catch(() => undefined);
      this.snapshot.remove();
      throw OpenShellError.from(error);
    } finally {
      qmp.close();
    }
    if (!(await waitUntilGone(pid, 10_000))) {
      signalIfRunning(pid, "SIGKILL");
      await waitUntilGone(pid, 2_000);
    }
    this.releaseQmpDir();
    return this.snapshot.commit(fingerprint, cause, Date.now() - startedAt);
  }

  /**
   * Copies the running VM into `target` (a new sandbox's directory) and lets it run on: the guest
   * flushes its page cache, QEMU stops the vCPUs and streams RAM and device state into `target`'s
   * `memory.snap`; with the disk inactive (flushed by the migration) the overlay is copied beside
   * it (a reflink where the filesystem has them), then the VM continues and gets the time (it
   * stood still meanwhile). The pause is the migration plus the disk copy. On failure the VM
   * continues too, and `target`'s copies are removed.
   */
  async copyInto(target: VmInstance): Promise<{ pausedMs: number; memoryBytes: number; diskBytes: number }> {
    const qmpSocket = this.qmpSocket();
    if (!this.runningPid() || !qmpSocket)
      throw new OpenShellError("failed_precondition", "the VM is not running");
    mkdirSync(target.paths.dir, { recursive: true, mode: 0o700 });
    await this.syncGuest(Date.now());
    const qmp = await QmpClient.connect(qmpSocket);
    const paused = { stopped: false };
    const pausedAt = Date.now();
    try {
      await saveStopped(qmp, target.snapshot, paused);
      await copyFile(this.paths.disk, target.paths.disk, fsConstants.COPYFILE_FICLONE);
      writeFileSync(target.paths.backing, this.backingFile());
    } catch (error) {
      target.snapshot.remove();
      rmSync(target.paths.disk, { force: true });
      throw OpenShellError.from(error);
    } finally {
      if (paused.stopped) await qmp.execute("cont").catch(() => undefined);
      qmp.close();
    }
    const pausedMs = Date.now() - pausedAt;
    try {
      this.control.send(clockLine());
    } catch {
      // an old guest without the channel keeps its late clock
    }
    return { pausedMs, memoryBytes: target.snapshot.bytes(), diskBytes: fileSize(target.paths.disk) };
  }

  /** Brings the VM's network link down or up (QMP `set_link`; the guest sees its carrier change). */
  async setLink(up: boolean): Promise<void> {
    const socket = this.qmpSocket();
    if (!socket) throw new OpenShellError("failed_precondition", "the VM is not running");
    const qmp = await QmpClient.connect(socket);
    try {
      await qmp.execute("set_link", { name: NETDEV_ID, up });
    } finally {
      qmp.close();
    }
  }

  /** Asks the guest to flush its page cache before a save; goes on without it after a while. */
  private async syncGuest(token: number): Promise<void> {
    const offset = fileSize(this.paths.consoleLog);
    try {
      this.control.send(`sync ${token}`);
      await this.waitForConsole(`OPENSHELL-VM-INIT synced ${token}`, offset, SAVE_SYNC_TIMEOUT_MS);
    } catch {
      // A guest that cannot flush is still saved: its dirty pages are in the snapshot.
    }
  }

  /**
   * Completes a restore started by `launch` with `incomingSnapshot`: waits until QEMU has loaded
   * the stream (it stays paused: the guest was stopped when saved) and `contentOk` (the file's
   * hash, checked meanwhile) holds, removes `consumed` (a sandbox's own snapshot: its disk diverges
   * from it as soon as the guest runs; a template's stays), resumes the guest and sends it
   * `controlLine` (`restored …`, `identity …` or `reidentify …`; `beforeCont` runs just before the
   * guest resumes). Throws when QEMU exits (a truncated or foreign
   * stream), the hash differs, or loading takes too long; the caller then kills QEMU and boots the disk.
   */
  async finishRestore(
    contentOk: Promise<boolean>,
    consumed: MemorySnapshot | undefined,
    /** Made once QEMU has loaded the snapshot: its clock must be the moment the guest runs again, not the launch's. */
    controlLine: () => string,
    beforeCont?: (qmp: QmpClient) => Promise<unknown>,
  ): Promise<void> {
    const deadline = Date.now() + RESTORE_TIMEOUT_MS;
    let qmp: QmpClient | undefined;
    try {
      for (;;) {
        if (!this.runningPid())
          throw new OpenShellError("internal", `QEMU refused the snapshot: ${this.qemuLogTail()}`);
        if (Date.now() > deadline)
          throw new OpenShellError(
            "deadline_exceeded",
            `QEMU did not load the snapshot within ${RESTORE_TIMEOUT_MS / 1000} s`,
          );
        const socket = this.qmpSocket();
        if (!qmp && socket) qmp = await QmpClient.connect(socket).catch(() => undefined);
        if (qmp) {
          const status = (await qmp.execute("query-status").catch(() => undefined)) as
            | { status?: string }
            | undefined;
          if (status?.status === "paused" || status?.status === "running") break;
        }
        await sleep(POLL_MS);
      }
      if (!(await contentOk))
        throw new OpenShellError(
          "internal",
          "the snapshot file's SHA-256 differs from the one recorded when it was saved (corrupt)",
        );
      consumed?.remove();
      await beforeCont?.(qmp);
      // Queued before `cont`, so the guest's init reads it first thing: a restored supervisor whose
      // timers fired during the pause could otherwise open a session that the late SIGUSR2 then
      // drops again (a READY → PROVISIONING flap seen in CI).
      this.control.send(controlLine());
      await qmp.execute("cont");
    } finally {
      qmp?.close();
    }
  }

  /**
   * Resolves once the console has `text` after `offset`; throws after `timeoutMs`, or at once when
   * this VM's QEMU is gone (killed by a shutdown, say).
   */
  async waitForConsole(text: string, offset: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!readFrom(this.paths.consoleLog, offset).includes(text)) {
      if (!this.runningPid())
        throw new OpenShellError("unavailable", `QEMU exited before the guest said "${text}"`);
      if (Date.now() > deadline)
        throw new OpenShellError("deadline_exceeded", `the guest did not say "${text}"`);
      await sleep(POLL_MS);
    }
  }

  /**
   * Stops the VM: the ACPI power button through QMP, pressed again every second until the guest's
   * init says it is stopping (a press before its init watches the button is lost) and then given
   * `shutdownMs` to power off; then SIGTERM (QEMU flushes its disk), then SIGKILL.
   * Resolves when the process is gone.
   */
  async stop(options: StopTimings): Promise<void> {
    try {
      await this.stopProcess(options);
    } finally {
      if (!this.runningPid()) this.releaseQmpDir();
    }
  }

  private async stopProcess(options: StopTimings): Promise<void> {
    const pid = this.runningPid();
    if (!pid) return;
    const consoleOffset = fileSize(this.paths.consoleLog);
    const pressUntil = Date.now() + options.powerdownMs;
    while (Date.now() < pressUntil) {
      const qmpSocket = this.qmpSocket();
      if (qmpSocket) await qmpCommand(qmpSocket, "system_powerdown").catch(() => undefined);
      if (await waitUntilGone(pid, Math.min(POWER_BUTTON_REPEAT_MS, pressUntil - Date.now()))) return;
      if (this.guestIsStopping(consoleOffset)) {
        if (await waitUntilGone(pid, options.shutdownMs)) return;
        break;
      }
    }
    signalIfRunning(pid, "SIGTERM");
    if (await waitUntilGone(pid, options.termMs)) return;
    signalIfRunning(pid, "SIGKILL");
    await waitUntilGone(pid, 2_000);
  }

  /** Whether the guest's init has logged a stop since the console had `offset` bytes. */
  private guestIsStopping(offset: number): boolean {
    return readFrom(this.paths.consoleLog, offset).includes("OPENSHELL-VM-INIT stopping");
  }

  /**
   * Where each vCPU is (QMP `info registers -a`, condensed to one line per CPU: instruction and
   * stack pointer, privilege level, halted), for the log of a boot that stalled: the addresses can
   * be looked up in the kernel's symbols. Throws when QEMU cannot be asked.
   */
  async vcpuState(): Promise<string> {
    const qmpSocket = this.qmpSocket();
    if (!this.runningPid() || !qmpSocket)
      throw new OpenShellError("failed_precondition", "the VM is not running");
    const qmp = await QmpClient.connect(qmpSocket);
    try {
      const text = await qmp.execute("human-monitor-command", { "command-line": "info registers -a" }, 3_000);
      return condenseRegisters(String(text));
    } finally {
      qmp.close();
    }
  }

  /** The console's last lines with control characters escaped (it is sandbox output). */
  consoleTail(maxLines = 20): string {
    return consoleTail(this.paths.consoleLog, maxLines);
  }

  private qemuLogTail(): string {
    return tail(this.paths.qemuLog, 5) || "no output";
  }

  /** A stopped or crashed VM's private QMP directory (if it has one) is removed; the next launch makes a new one. */
  releaseQmpDir(): void {
    const qmpSocket = this.qmpSocket();
    if (!qmpSocket || qmpSocket === this.paths.qmpSocketBesideDisk) return;
    rmSync(dirname(qmpSocket), { recursive: true, force: true });
    rmSync(this.paths.qmpDirRecord, { force: true });
  }

  remove(): void {
    this.releaseQmpDir();
    this.snapshot.remove();
    rmSync(this.paths.dir, { recursive: true, force: true });
  }
}

function signalName(number: number): string {
  const entry = Object.entries(osConstants.signals).find(([, value]) => value === number);
  return entry ? entry[0] : String(number);
}

/** A real directory (no symlink) of ours that nobody else can enter. */
function isPrivateDirectory(dir: string): boolean {
  try {
    const stat = lstatSync(dir);
    return stat.isDirectory() && stat.uid === process.getuid?.() && (stat.mode & 0o777) === 0o700;
  } catch {
    return false;
  }
}

/** `info registers -a` output → "CPU#0 RIP=… RSP=… CPL=0 HLT=1; CPU#1 …". */
export function condenseRegisters(text: string): string {
  const cpus: string[] = [];
  for (const block of text.split(/^(?=CPU#\d+)/m)) {
    const cpu = /^CPU#(\d+)/.exec(block)?.[1];
    if (cpu === undefined) continue;
    const field = (name: string) => new RegExp(`\\b${name}=([0-9a-fA-F]+)`).exec(block)?.[1] ?? "?";
    cpus.push(`CPU#${cpu} RIP=${field("RIP")} RSP=${field("RSP")} CPL=${field("CPL")} HLT=${field("HLT")}`);
  }
  return cpus.join("; ") || "no vCPU state";
}

/** A file's size in bytes, 0 when it does not exist. */
export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    const contents = readFileSync(file);
    return contents.subarray(Math.min(offset, contents.length)).toString("latin1");
  } catch {
    return "";
  }
}

function tail(file: string, maxLines: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-maxLines).join("\n");
  } catch {
    return "";
  }
}

/**
 * Stops the vCPUs (`paused.stopped` says it happened, so the caller can continue them) and streams
 * RAM and device state into `into`'s file; resolves once the writer has renamed it into place.
 */
async function saveStopped(
  qmp: QmpClient,
  into: MemorySnapshot,
  paused: { stopped: boolean },
): Promise<void> {
  await qmp.execute("migrate-set-parameters", { "max-bandwidth": MIGRATION_MAX_BANDWIDTH });
  await qmp.execute("stop");
  paused.stopped = true;
  await qmp.execute("migrate", { uri: `exec:${migrationWriteCommand(into.tmpFile, into.file)}` });
  await pollMigration(qmp, SAVE_TIMEOUT_MS);
  // The writer renames the file into place once `cat` has written the last byte.
  const deadline = Date.now() + 30_000;
  while (!existsSync(into.file)) {
    if (Date.now() > deadline)
      throw new OpenShellError("internal", "the snapshot writer did not finish within 30 s");
    await sleep(POLL_MS);
  }
}

/** Polls an outgoing migration until it completed; throws when it failed or took too long. */
async function pollMigration(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as { status?: string; "error-desc"?: string };
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled")
      throw new OpenShellError(
        "internal",
        `QEMU could not save the VM: ${info["error-desc"] ?? info.status}`,
      );
    if (Date.now() > deadline)
      throw new OpenShellError("deadline_exceeded", `saving the VM took longer than ${timeoutMs / 1000} s`);
    await sleep(POLL_MS);
  }
}
