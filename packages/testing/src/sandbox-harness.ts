import { type ChildProcess, spawn } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { signalIfRunning, waitUntilGone } from "@openshell/core";
import { type ExecSandboxEvent, type OpenShell, SandboxPhase } from "@openshell/proto";
import {
  type GatewayTls,
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "./gateway-harness.js";
import { findRepoRoot, freePort, isAlive, waitFor } from "./process.js";

const REPO = findRepoRoot();
/** The built supervisor; OPENSHELL_TEST_SUPERVISOR_BIN runs another build (bench comparisons). */
export const SUPERVISOR_BIN =
  process.env.OPENSHELL_TEST_SUPERVISOR_BIN ??
  join(REPO, "packages", "sandbox-supervisor", "dist", "openshell-sandbox.js");
export const CLI_BIN = join(REPO, "apps", "cli", "dist", "openshell.js");
/** Shells and commands run as this unprivileged host user in the tests. */
export const RUN_AS_USER = "nobody";
const NOBODY_UID = 65534;

/** A workdir the run-as user owns. */
export function makeWorkdir(): string {
  const dir = mkdtempSync(join(tmpdir(), "osws-"));
  chownSync(dir, NOBODY_UID, NOBODY_UID);
  return dir;
}

/**
 * Starts the real gateway whose test driver runs a real `openshell-sandbox` supervisor process on
 * the host for every sandbox (as root, socket in the driver's state dir, shells as `nobody`).
 */
export async function startGatewayWithSupervisors(options: {
  stateDir: string;
  workdir: string;
  port?: number;
  env?: Record<string, string>;
  tls?: GatewayTls;
}): Promise<RunningGateway> {
  const port = options.port ?? (await freePort());
  const tlsEnv: Record<string, string> = options.tls
    ? {
        OPENSHELL_TEST_DRIVER_TLS_CA: options.tls.client.ca,
        OPENSHELL_TEST_DRIVER_TLS_CERT: options.tls.client.cert ?? "",
        OPENSHELL_TEST_DRIVER_TLS_KEY: options.tls.client.key ?? "",
      }
    : {};
  return startGateway({
    stateDir: options.stateDir,
    port,
    tls: options.tls,
    env: {
      OPENSHELL_TEST_DRIVER_SUPERVISOR: SUPERVISOR_BIN,
      OPENSHELL_TEST_DRIVER_ENDPOINT: `${options.tls ? "https" : "http"}://127.0.0.1:${port}`,
      OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS: JSON.stringify([
        "--run-as-user",
        RUN_AS_USER,
        "--workdir",
        options.workdir,
      ]),
      ...tlsEnv,
      ...options.env,
    },
  });
}

/** Where `describeNotReady` finds what it quotes besides the gateway's own view of the sandbox. */
export interface NotReadyClues {
  /** The VM driver's state dir: the tail of the sandbox's `sandboxes/<id>/console.log` is quoted. */
  vmStateDir?: string;
  /** The gateway's log; its tail is quoted. */
  gatewayLog?: () => string;
}

const CLUE_TAIL_CHARS = 4000;
/** How long the watch that replays a sandbox's platform events and log tail may take. */
const CLUE_WATCH_MS = 3000;

/**
 * Why a sandbox is where it is, for a test's failure message: its phase and conditions, its
 * platform events and log tail (from WatchSandbox), the tail of its VM console and of the gateway
 * log. Never throws: what cannot be read says so.
 */
export async function describeNotReady(
  client: Client<typeof OpenShell>,
  name: string,
  clues: NotReadyClues = {},
): Promise<string> {
  const parts: string[] = [];
  let id = "";
  try {
    const sandbox = (await client.getSandbox({ name }, { timeoutMs: CLUE_WATCH_MS })).sandbox;
    id = sandbox?.id ?? "";
    parts.push(`sandbox ${name} (${id}): phase ${SandboxPhase[sandbox?.phase ?? SandboxPhase.UNSPECIFIED]}`);
    for (const c of sandbox?.status?.conditions ?? [])
      parts.push(
        `  condition ${c.type}=${c.status} ${c.reason}: ${c.message} (since ${c.lastTransitionTime})`,
      );
  } catch (error) {
    parts.push(`sandbox ${name}: GetSandbox failed: ${(error as Error).message}`);
  }
  if (id) parts.push(await watchedClues(client, id));
  if (id && clues.vmStateDir) {
    const consoleLog = join(clues.vmStateDir, "sandboxes", id, "console.log");
    parts.push(`VM console (${consoleLog}), tail:`, fileTail(consoleLog));
  }
  if (clues.gatewayLog) parts.push("gateway log, tail:", clues.gatewayLog().slice(-CLUE_TAIL_CHARS));
  return parts.join("\n");
}

function fileTail(file: string): string {
  try {
    return readFileSync(file, "utf8").slice(-CLUE_TAIL_CHARS);
  } catch (error) {
    return `(${(error as Error).message})`;
  }
}

/** The platform events and log lines the gateway still holds for the sandbox (its tails). */
async function watchedClues(client: Client<typeof OpenShell>, id: string): Promise<string> {
  const lines: string[] = [];
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CLUE_WATCH_MS);
  try {
    const stream = client.watchSandbox(
      { id, followEvents: true, followLogs: true, logTailLines: 40 },
      { signal: controller.signal },
    );
    for await (const item of stream) {
      const p = item.payload;
      const at = (ms: bigint) => new Date(Number(ms)).toISOString();
      if (p.case === "event")
        lines.push(
          `  event ${at(p.value.timestampMs)} ${p.value.type} ${p.value.reason}: ${p.value.message}`,
        );
      else if (p.case === "log")
        lines.push(
          `  log ${at(p.value.timestampMs)} [${p.value.source}] ${p.value.level} ${p.value.message}`,
        );
    }
  } catch (error) {
    if (!controller.signal.aborted) lines.push(`  (WatchSandbox failed: ${(error as Error).message})`);
  } finally {
    clearTimeout(timer);
  }
  return `platform events and sandbox log, tails:\n${lines.join("\n") || "  (none)"}`;
}

/**
 * Waits until the sandbox is in `phase`; on timeout the error says why not (`describeNotReady`:
 * conditions, events, the gateway's log, and the VM console when `clues.vmStateDir` is given).
 */
export async function waitForPhase(
  gw: RunningGateway,
  name: string,
  phase: SandboxPhase,
  timeoutMs = 20_000,
  clues: Omit<NotReadyClues, "gatewayLog"> = {},
) {
  let last: SandboxPhase | undefined;
  await waitFor(
    async () => {
      last = (await gw.grpc.getSandbox({ name })).sandbox?.phase;
      return last === phase;
    },
    timeoutMs,
    () =>
      `sandbox ${name} did not reach ${SandboxPhase[phase]} (last ${last === undefined ? "none" : SandboxPhase[last]})`,
  ).catch(async (error: Error) => {
    const why = await describeNotReady(gw.grpc, name, { ...clues, gatewayLog: gw.output });
    throw new Error(`${error.message} within ${timeoutMs / 1000} s\n${why}`);
  });
}

export function supervisorPid(stateDir: string, sandboxId: string): number {
  return Number(readFileSync(join(stateDir, "drv", "supervisors", `${sandboxId}.pid`), "utf8"));
}

export function supervisorLog(stateDir: string, sandboxId: string): string {
  try {
    return readFileSync(join(stateDir, "drv", "supervisors", `${sandboxId}.log`), "utf8");
  } catch {
    return "";
  }
}

/** A gateway with host supervisors and one READY sandbox, each in directories of its own. */
export interface ReadySandbox {
  gw: RunningGateway;
  stateDir: string;
  workdir: string;
  id: string;
}

/**
 * Starts a gateway with host supervisors in fresh directories and creates sandbox `name`, READY.
 * When it does not get READY the error carries the supervisor's log, and nothing is left running.
 */
export async function startReadySandbox(
  name: string,
  options: { env?: Record<string, string> } = {},
): Promise<ReadySandbox> {
  const stateDir = makeStateDir();
  const workdir = makeWorkdir();
  let gw: RunningGateway | undefined;
  let id = "";
  try {
    gw = await startGatewayWithSupervisors({ stateDir, workdir, env: options.env });
    id = (await gw.grpc.createSandbox({ spec: {}, name })).sandbox!.id;
    await waitForPhase(gw, name, SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\nsupervisor log:\n${supervisorLog(stateDir, id)}`);
    });
    return { gw, stateDir, workdir, id };
  } catch (error) {
    await stopReadySandbox({ gw, stateDir, workdir, id }, "SIGKILL");
    throw error;
  }
}

/** Stops the gateway with `signal`, kills the sandbox's supervisor if it outlives it, removes both dirs. */
export async function stopReadySandbox(
  sandbox: Omit<ReadySandbox, "gw"> & { gw?: RunningGateway },
  signal: NodeJS.Signals,
): Promise<void> {
  await sandbox.gw?.stop(signal);
  if (sandbox.id) {
    const pid = supervisorPidIfAny(sandbox.stateDir, sandbox.id);
    if (pid && isAlive(pid)) process.kill(pid, "SIGKILL");
  }
  removeStateDir(sandbox.stateDir);
  rmSync(sandbox.workdir, { recursive: true, force: true });
}

/** The sandbox's supervisor pid, or undefined when it never started. */
export function supervisorPidIfAny(stateDir: string, sandboxId: string): number | undefined {
  try {
    return supervisorPid(stateDir, sandboxId);
  } catch {
    return undefined;
  }
}

/**
 * Ends host supervisors (the test driver's) by PID: SIGTERM first, so each stops its workload
 * (`sleep infinity` as the run-as user) before it exits, then SIGKILL after `graceMs`. SIGKILL
 * alone leaves the workloads running as orphans, and a few hundred of them exhaust the run-as
 * user's process limit (the launcher's RLIMIT_NPROC) for every later test.
 */
export async function endSupervisors(pids: number[], graceMs = 5_000): Promise<void> {
  for (const pid of pids) signalIfRunning(pid, "SIGTERM");
  await Promise.all(
    pids.map(async (pid) => {
      if (!(await waitUntilGone(pid, graceMs))) signalIfRunning(pid, "SIGKILL");
    }),
  );
}

/** How many supervisor sessions the sandbox's supervisor has logged as established. */
export function sessionsEstablished(stateDir: string, sandboxId: string): number {
  return supervisorLog(stateDir, sandboxId).split("supervisor session established").length - 1;
}

/** Waits until the sandbox's supervisor has logged at least `count` established sessions. */
export async function waitForSessionsEstablished(
  stateDir: string,
  sandboxId: string,
  count: number,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    () => sessionsEstablished(stateDir, sandboxId) >= count,
    timeoutMs,
    () => `supervisor did not reconnect:\n${supervisorLog(stateDir, sandboxId).slice(-3000)}`,
  );
}

/**
 * Freezes the gateway (SIGSTOP) until the sandbox's supervisor logs that its session failed (its
 * keepalive gave up), then lets the gateway run again (SIGCONT), also when that never happens.
 */
export async function freezeGatewayUntilSessionFails(sandbox: ReadySandbox): Promise<void> {
  const { gw, stateDir, id } = sandbox;
  process.kill(gw.pid, "SIGSTOP");
  try {
    await waitFor(
      () => supervisorLog(stateDir, id).includes("supervisor session failed"),
      10_000,
      () => `supervisor did not notice the frozen gateway:\n${supervisorLog(stateDir, id).slice(-3000)}`,
    );
  } finally {
    process.kill(gw.pid, "SIGCONT");
  }
}

/** OpenSSH options that reach a sandbox through `openshell ssh-proxy` and CONNECT /connect/ssh. */
export function sshOptions(
  gw: RunningGateway,
  sandboxId: string,
  token: string,
  tls?: GatewayTls["client"],
): string[] {
  const tlsFlags = tls
    ? ` --tls-ca ${tls.ca}${tls.cert ? ` --tls-cert ${tls.cert}` : ""}${tls.key ? ` --tls-key ${tls.key}` : ""}`
    : "";
  return sshOptionsVia(
    `${process.execPath} ${CLI_BIN} ssh-proxy --gateway ${gw.url}/connect/ssh --sandbox-id ${sandboxId} --token ${token}${tlsFlags}`,
  );
}

/** OpenSSH options for a throwaway sandbox host reached through `proxyCommand`. */
export function sshOptionsVia(proxyCommand: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-o",
    `ProxyCommand=${proxyCommand}`,
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
  ];
}

export interface CommandResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command to completion, feeding `input` to stdin. */
export function run(
  command: string,
  args: string[],
  options: { input?: Buffer | string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    const child: ChildProcess = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} timed out; stderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout: Buffer.concat(stdout), stderr });
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(options.input ?? "");
  });
}

/** How many file descriptors a process has open (sockets, pipes, files). */
export function openFdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export interface ExecOutput {
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
}

/** Drains an ExecSandbox stream into its stdout, stderr and exit code. */
export async function execOutput(events: AsyncIterable<ExecSandboxEvent>): Promise<ExecOutput> {
  const result: ExecOutput = { stdout: "", stderr: "", exitCode: undefined };
  for await (const event of events) {
    const p = event.payload;
    if (p.case === "stdout") result.stdout += Buffer.from(p.value.data).toString();
    else if (p.case === "stderr") result.stderr += Buffer.from(p.value.data).toString();
    else if (p.case === "exit") result.exitCode = p.value.exitCode;
  }
  return result;
}
