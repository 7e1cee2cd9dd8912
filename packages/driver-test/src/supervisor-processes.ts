import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isAlive, signalIfRunning, waitUntilGone } from "@openshell/core";
import type { compute } from "@openshell/proto";

/**
 * TEST-ONLY: runs a real `openshell-sandbox` supervisor on the host for each simulated sandbox, so
 * integration tests exercise real sessions, relays and SSH without a VM. Enabled by env on the
 * gateway (inherited by this driver):
 * - OPENSHELL_TEST_DRIVER_SUPERVISOR       path of the bundled openshell-sandbox.js
 * - OPENSHELL_TEST_DRIVER_ENDPOINT         gateway URL the supervisor dials
 * - OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS  JSON array of extra flags (e.g. --run-as-user nobody)
 * - OPENSHELL_TEST_DRIVER_TLS_CA/_CERT/_KEY  client TLS files, given to the supervisor as OPENSHELL_TLS_*
 * Supervisors are detached: like VMs they outlive a crashed driver and are adopted by pid file.
 * They run with OPENSHELL_TEST_ONLY_NO_ISOLATION=1 (the supervisor's --test-only-no-isolation):
 * children on the host are not confined and no network namespace is built. Real sandboxes never
 * get it; confinement is tested with the launcher alone, the SSH server and in VM sandboxes.
 */
export interface SupervisorLaunchConfig {
  script: string;
  endpoint: string;
  extraArgs: string[];
  stateDir: string;
}

export function supervisorLaunchConfigFromEnv(
  env: NodeJS.ProcessEnv,
  stateDir: string,
): SupervisorLaunchConfig | undefined {
  const script = env.OPENSHELL_TEST_DRIVER_SUPERVISOR;
  if (!script) return undefined;
  const endpoint = env.OPENSHELL_TEST_DRIVER_ENDPOINT;
  if (!endpoint)
    throw new Error("OPENSHELL_TEST_DRIVER_ENDPOINT is required with OPENSHELL_TEST_DRIVER_SUPERVISOR");
  const extraArgs = env.OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS
    ? (JSON.parse(env.OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS) as string[])
    : [];
  return { script, endpoint, extraArgs, stateDir };
}

export class SupervisorProcesses {
  private readonly dir: string;

  constructor(private readonly config: SupervisorLaunchConfig) {
    this.dir = join(config.stateDir, "supervisors");
    mkdirSync(this.dir, { recursive: true });
  }

  /** Where a sandbox's supervisor serves SSH (short: Unix socket paths are limited to 108 bytes). */
  socketPath(sandboxId: string): string {
    return join(this.dir, `${sandboxId.slice(0, 8)}.sock`);
  }

  pidFile(sandboxId: string): string {
    return join(this.dir, `${sandboxId}.pid`);
  }

  /** Starts the sandbox's supervisor unless one from an earlier driver still runs. */
  ensureRunning(sandbox: compute.DriverSandbox, onExit: (code: number | null) => void): number {
    const existing = this.runningPid(sandbox.id);
    if (existing) {
      this.watchAdopted(existing, onExit);
      return existing;
    }
    const log = openSync(join(this.dir, `${sandbox.id}.log`), "a");
    // The socket path (under the state dir) goes in argv, not env: a test's removeStateDir finds
    // and ends every process whose argv names its state dir, so no supervisor outlives its test.
    const argv = [
      this.config.script,
      "--ssh-socket-path",
      this.socketPath(sandbox.id),
      ...this.config.extraArgs,
    ];
    const child = spawn(process.execPath, argv, {
      detached: true,
      stdio: ["ignore", log, log],
      env: {
        PATH: process.env.PATH,
        OPENSHELL_SANDBOX_ID: sandbox.id,
        OPENSHELL_SANDBOX: sandbox.name,
        OPENSHELL_ENDPOINT: this.config.endpoint,
        OPENSHELL_SUPERVISOR_TOKEN: sandbox.spec?.supervisorToken ?? "",
        OPENSHELL_LOG_LEVEL: sandbox.spec?.logLevel || "debug",
        OPENSHELL_TEST_ONLY_NO_ISOLATION: "1",
        // A workload that runs until the sandbox stops (as upstream's Kubernetes driver sets it);
        // a test's `-- COMMAND` in OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS replaces it.
        OPENSHELL_SANDBOX_COMMAND: "sleep infinity",
        // ocsf_json_enabled writes beside the supervisor's log, not to the host's /var/log.
        OPENSHELL_OCSF_LOG_DIR: join(this.dir, `${sandbox.id}.ocsf`),
        ...passThrough(process.env, [
          "OPENSHELL_KEEPALIVE_INTERVAL_MS",
          "OPENSHELL_KEEPALIVE_TIMEOUT_MS",
          "NODE_OPTIONS",
        ]),
        ...renamed(process.env, {
          OPENSHELL_TEST_DRIVER_TLS_CA: "OPENSHELL_TLS_CA",
          OPENSHELL_TEST_DRIVER_TLS_CERT: "OPENSHELL_TLS_CERT",
          OPENSHELL_TEST_DRIVER_TLS_KEY: "OPENSHELL_TLS_KEY",
        }),
      },
    });
    closeSync(log);
    child.unref();
    const pid = child.pid ?? 0;
    writeFileSync(this.pidFile(sandbox.id), String(pid));
    child.once("exit", (code) => onExit(code));
    return pid;
  }

  stop(sandboxId: string): void {
    const pid = this.runningPid(sandboxId);
    if (pid) signalIfRunning(pid, "SIGTERM");
    rmSync(this.pidFile(sandboxId), { force: true });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the supervisor is gone. */
  async stopAndWait(sandboxId: string, graceMs: number): Promise<void> {
    const pid = this.runningPid(sandboxId);
    if (pid) {
      signalIfRunning(pid, "SIGTERM");
      if (!(await waitUntilGone(pid, graceMs))) {
        signalIfRunning(pid, "SIGKILL");
        await waitUntilGone(pid, 5_000);
      }
    }
    rmSync(this.pidFile(sandboxId), { force: true });
  }

  private runningPid(sandboxId: string): number | undefined {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile(sandboxId), "utf8"));
    } catch {
      return undefined;
    }
    return isAlive(pid) ? pid : undefined;
  }

  /** An adopted process is not our child: poll for its exit. */
  private watchAdopted(pid: number, onExit: (code: number | null) => void): void {
    const timer = setInterval(() => {
      if (!isAlive(pid)) {
        clearInterval(timer);
        onExit(null);
      }
    }, 500);
    timer.unref();
  }
}

function passThrough(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) if (env[name]) picked[name] = env[name] as string;
  return picked;
}

function renamed(env: NodeJS.ProcessEnv, names: Record<string, string>): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const [from, to] of Object.entries(names)) if (env[from]) picked[to] = env[from] as string;
  return picked;
}
