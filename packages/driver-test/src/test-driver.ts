import { readFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { OPENSHELL_VERSION, OpenShellError } from "@openshell/core";
import { type ComputeDriverImpl, DriverWatchHub, setReadyCondition } from "@openshell/driver-sdk";
import { compute } from "@openshell/proto";
import type { SupervisorProcesses } from "./supervisor-processes.js";

/**
 * TEST-ONLY compute driver. It runs nothing: it records sandboxes in `<state-dir>/sandboxes.json` and
 * reports them the way a real driver would (Starting, deleting, deleted, platform events), so the
 * gateway's compute runtime can be exercised with a real child process over a real Unix socket.
 *
 * Behaviour can be steered per sandbox through spec.environment (test hooks only):
 * - TEST_DRIVER_REJECT=msg       ValidateSandboxCreate fails with FAILED_PRECONDITION msg
 * - TEST_DRIVER_FAIL_CREATE=msg  CreateSandbox fails with INTERNAL msg
 * - TEST_DRIVER_ERROR=msg        after creation the sandbox reports Ready=False reason Crashed
 * - TEST_DRIVER_FAIL_FORK=msg    a CreateSandbox with fork_of fails with INTERNAL msg (a fork
 *                                inherits its source's environment, so set it on the source)
 * and for the whole driver through its own environment (inherited from the gateway):
 * - OPENSHELL_TEST_DRIVER_NO_STOP_START=1  StopSandbox and StartSandbox answer UNIMPLEMENTED
 * - OPENSHELL_TEST_DRIVER_FORK=1           GetCapabilities says supports_fork; a CreateSandbox with
 *   fork_of (a running sandbox of this driver) creates the copy like any sandbox (a fresh supervisor:
 *   its processes start anew) and reports a platform event "Forked" naming the source's id. Without
 *   it, fork_of is refused with FAILED_PRECONDITION.
 *
 * StopSandbox ends the sandbox's supervisor (SIGTERM, then SIGKILL) and reports Ready=False reason
 * Stopped, which survives a driver restart; StartSandbox runs the supervisor again. The sandbox's
 * files are the host directories its supervisor works in, so they survive both.
 */
export interface TestDriverOptions {
  stateDir: string;
  deleteDelayMs: number;
  /** When set, every sandbox also gets a real supervisor process on the host. */
  supervisors?: SupervisorProcesses;
  /** Answer StopSandbox and StartSandbox UNIMPLEMENTED, like a driver without them. */
  withoutStopStart?: boolean;
  /** Say supports_fork and honour CreateSandbox's fork_of (simulated: the copy starts fresh). */
  withFork?: boolean;
}

/** How long a stopping supervisor gets after SIGTERM before SIGKILL. */
const SUPERVISOR_STOP_GRACE_MS = 10_000;

const HOOK_REJECT = "TEST_DRIVER_REJECT";
const HOOK_FAIL_CREATE = "TEST_DRIVER_FAIL_CREATE";
const HOOK_ERROR = "TEST_DRIVER_ERROR";
const HOOK_FAIL_FORK = "TEST_DRIVER_FAIL_FORK";

export class TestDriver {
  private readonly sandboxes = new Map<string, compute.DriverSandbox>();
  private readonly events = new DriverWatchHub("test");
  /** Sandboxes whose supervisor StopSandbox is ending: its exit is not a crash. */
  private readonly stopping = new Set<string>();
  private readonly stateFile: string;
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly options: TestDriverOptions) {
    this.stateFile = join(options.stateDir, "sandboxes.json");
  }

  async load(): Promise<void> {
    await mkdir(this.options.stateDir, { recursive: true });
    let raw: string;
    try {
      raw = readFileSync(this.stateFile, "utf8");
    } catch {
      return;
    }
    for (const json of JSON.parse(raw) as string[]) {
      const sandbox = fromJsonString(compute.DriverSandboxSchema, json);
      this.sandboxes.set(sandbox.id, sandbox);
    }
    // Deletions interrupted by a crash complete now; live sandboxes get their supervisor back,
    // stopped ones stay stopped.
    for (const sandbox of [...this.sandboxes.values()]) {
      if (sandbox.status?.deleting) this.finishDelete(sandbox.id);
      else if (!isStopped(sandbox)) this.runSupervisor(sandbox);
    }
  }

  private runSupervisor(sandbox: compute.DriverSandbox): void {
    this.options.supervisors?.ensureRunning(sandbox, (code) => {
      const current = this.sandboxes.get(sandbox.id);
      if (!current || current.status?.deleting || this.stopping.has(sandbox.id) || isStopped(current)) return;
      setReadyCondition(current, "False", "ProcessExited", `supervisor exited (code ${code ?? "unknown"})`);
      void this.save();
      this.events.sandbox(current);
    });
  }

  impl(): ComputeDriverImpl {
    return {
      getCapabilities: () =>
        create(compute.GetCapabilitiesResponseSchema, {
          driverName: "test",
          driverVersion: OPENSHELL_VERSION,
          defaultImage: "openshell/test-sandbox:latest",
          supportsGpu: false,
          supportsFork: this.options.withFork ?? false,
        }),
      validateSandboxCreate: (req) => {
        const env = req.sandbox?.spec?.environment ?? {};
        if (env[HOOK_REJECT]) throw new OpenShellError("failed_precondition", env[HOOK_REJECT]);
        if (req.sandbox?.spec?.gpu) {
          throw new OpenShellError(
            "failed_precondition",
            "the test driver has no GPUs; create the sandbox without --gpu",
          );
        }
        return {};
      },
      getSandbox: (req) => {
        const sandbox = this.find(req.sandboxId, req.sandboxName);
        if (!sandbox)
          throw new OpenShellError("not_found", `sandbox ${req.sandboxId || req.sandboxName} not found`);
        return { sandbox };
      },
      listSandboxes: () => ({ sandboxes: [...this.sandboxes.values()] }),
      createSandbox: async (req) => {
        const input = req.sandbox;
        if (!input?.id) throw new OpenShellError("invalid_argument", "sandbox.id is required");
        if (this.sandboxes.has(input.id))
          throw new OpenShellError("already_exists", `sandbox ${input.id} already exists`);
        if (req.forkOf) this.requireForkSource(req.forkOf);
        const env = input.spec?.environment ?? {};
        if (env[HOOK_FAIL_CREATE]) throw new OpenShellError("internal", env[HOOK_FAIL_CREATE]);
        if (req.forkOf && env[HOOK_FAIL_FORK]) throw new OpenShellError("internal", env[HOOK_FAIL_FORK]);
        const sandbox = create(compute.DriverSandboxSchema, {
          ...input,
          status: create(compute.DriverSandboxStatusSchema, {
            sandboxName: input.name,
            instanceId: `test-${input.id.slice(0, 8)}`,
          }),
        });
        setReadyCondition(sandbox, "False", "Starting", "simulated sandbox is starting");
        this.sandboxes.set(sandbox.id, sandbox);
        await this.save();
        this.events.sandbox(sandbox);
        this.runSupervisor(sandbox);
        this.events.platformEvent(
          sandbox.id,
          "Normal",
          "Scheduled",
          `simulated sandbox ${sandbox.name} scheduled`,
        );
        if (req.forkOf) {
          this.events.platformEvent(
            sandbox.id,
            "Normal",
            "Forked",
            `simulated fork of sandbox ${req.forkOf}`,
          );
        }
        if (env[HOOK_ERROR]) {
          setTimeout(() => {
            const current = this.sandboxes.get(sandbox.id);
            if (!current || current.status?.deleting) return;
            setReadyCondition(current, "False", "Crashed", env[HOOK_ERROR] ?? "");
            void this.save();
            this.events.sandbox(current);
            this.events.platformEvent(current.id, "Warning", "Crashed", env[HOOK_ERROR] ?? "");
          }, 50);
        }
        return {};
      },
      startSandbox: async (req) => {
        this.requireStopStart("StartSandbox");
        const sandbox = this.require(req.sandboxId, req.sandboxName);
        setReadyCondition(sandbox, "False", "Starting", "simulated sandbox is starting");
        await this.save();
        this.events.sandbox(sandbox);
        this.runSupervisor(sandbox);
        this.events.platformEvent(
          sandbox.id,
          "Normal",
          "Started",
          `simulated sandbox ${sandbox.name} started`,
        );
        return {};
      },
      stopSandbox: async (req) => {
        this.requireStopStart("StopSandbox");
        const sandbox = this.require(req.sandboxId, req.sandboxName);
        this.stopping.add(sandbox.id);
        try {
          await this.options.supervisors?.stopAndWait(sandbox.id, SUPERVISOR_STOP_GRACE_MS);
          setReadyCondition(sandbox, "False", "Stopped", "simulated sandbox is stopped");
          await this.save();
        } finally {
          this.stopping.delete(sandbox.id);
        }
        this.events.sandbox(sandbox);
        this.events.platformEvent(
          sandbox.id,
          "Normal",
          "Stopped",
          `simulated sandbox ${sandbox.name} stopped`,
        );
        return {};
      },
      deleteSandbox: async (req) => {
        const sandbox = this.find(req.sandboxId, req.sandboxName);
        if (!sandbox) return { deleted: false };
        if (sandbox.status) sandbox.status.deleting = true;
        this.options.supervisors?.stop(sandbox.id);
        await this.save();
        this.events.sandbox(sandbox);
        setTimeout(() => this.finishDelete(sandbox.id), this.options.deleteDelayMs);
        return { deleted: true };
      },
      watchSandboxes: (_req, context) => this.events.watch(context.signal, () => this.sandboxes.values()),
    };
  }

  /** FAILED_PRECONDITION unless this driver forks and `sourceId` is one of its running sandboxes. */
  private requireForkSource(sourceId: string): void {
    if (!this.options.withFork)
      throw new OpenShellError(
        "failed_precondition",
        "this test driver cannot fork (OPENSHELL_TEST_DRIVER_FORK=1)",
      );
    const source = this.sandboxes.get(sourceId);
    if (!source || source.status?.deleting || isStopped(source))
      throw new OpenShellError("failed_precondition", `fork source ${sourceId} is not a running sandbox`);
  }

  private requireStopStart(rpc: string): void {
    if (this.options.withoutStopStart)
      throw new OpenShellError("unimplemented", `${rpc} is switched off in this test driver`);
  }

  private finishDelete(id: string): void {
    if (!this.sandboxes.delete(id)) return;
    void this.save();
    this.events.deleted(id);
  }

  private find(id: string, name: string): compute.DriverSandbox | undefined {
    if (id) return this.sandboxes.get(id);
    for (const sandbox of this.sandboxes.values()) if (sandbox.name === name) return sandbox;
    return undefined;
  }

  private require(id: string, name: string): compute.DriverSandbox {
    const sandbox = this.find(id, name);
    if (!sandbox) throw new OpenShellError("not_found", `sandbox ${id || name} not found`);
    return sandbox;
  }

  /** Writes are chained so the file always holds the latest complete state (write + rename). */
  private save(): Promise<void> {
    const snapshot = JSON.stringify(
      [...this.sandboxes.values()].map((s) => toJsonString(compute.DriverSandboxSchema, s)),
    );
    this.saving = this.saving.then(async () => {
      const tmp = `${this.stateFile}.tmp`;
      await writeFile(tmp, snapshot);
      await rename(tmp, this.stateFile);
    });
    return this.saving;
  }
}

function isStopped(sandbox: compute.DriverSandbox): boolean {
  return sandbox.status?.conditions.some((c) => c.type === "Ready" && c.reason === "Stopped") ?? false;
}
