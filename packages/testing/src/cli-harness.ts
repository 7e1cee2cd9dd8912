import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { findRepoRoot, isAlive, pidsOf } from "./process.js";

export const REPO = findRepoRoot(import.meta.dirname);
export const CLI = join(REPO, "apps", "cli", "dist", "openshell.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * An isolated `openshell` user: its own XDG config and data dirs (gateway registry, local gateway
 * state, VM disks) under one short temp dir, so tests never see the real user's gateways.
 */
export class CliSandboxUser {
  readonly root = mkdtempSync("/tmp/oscli-");
  readonly env: NodeJS.ProcessEnv;

  constructor(extraEnv: NodeJS.ProcessEnv = {}) {
    this.env = {
      ...process.env,
      XDG_CONFIG_HOME: join(this.root, "c"),
      XDG_DATA_HOME: join(this.root, "d"),
      NO_COLOR: "1",
      OPENSHELL_PROVISION_TIMEOUT: "180",
      // The staged runtime stays where the set-up put it, outside this user's data dir.
      OPENSHELL_VM_RUNTIME_DIR:
        process.env.OPENSHELL_VM_RUNTIME_DIR ??
        join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "openshell", "vm-runtime"),
      ...extraEnv,
    };
    delete this.env.OPENSHELL_GATEWAY;
    delete this.env.OPENSHELL_GATEWAY_ENDPOINT;
  }

  get configDir(): string {
    return join(this.root, "c", "openshell");
  }

  gatewayStateDir(name = "openshell"): string {
    return join(this.root, "d", "openshell", "gateways", name);
  }

  /** Runs the built CLI; stdin is `input` (then closed) or nothing. */
  run(
    args: string[],
    options: { input?: string | Buffer; timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
  ): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: { ...this.env, ...options.env },
        cwd: options.cwd ?? this.root,
        stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      if (options.input !== undefined) child.stdin?.end(options.input);
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 240_000);
      child.once("error", reject);
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
    });
  }

  /** Starts the CLI without waiting (for commands that run while another one is in flight). */
  start(args: string[]) {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: this.env,
      cwd: this.root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const done = new Promise<CliResult>((resolve) =>
      child.once("close", (code) => resolve({ code: code ?? 1, stdout, stderr })),
    );
    return { child, done, output: () => ({ stdout, stderr }) };
  }

  gatewayPid(name = "openshell"): number | undefined {
    const file = join(this.gatewayStateDir(name), "gateway.pid");
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, "utf8").trim());
    return isAlive(pid) ? pid : undefined;
  }

  qemuPids(): number[] {
    return pidsOf(/^qemu-system/, this.root);
  }

  gatewayLog(name = "openshell"): string {
    const file = join(this.gatewayStateDir(name), "logs", "gateway.log");
    return existsSync(file) ? readFileSync(file, "utf8").slice(-8000) : "(no gateway log)";
  }

  private logShown = false;

  /** For afterEach: prints the gateway log once, after the first failed test. */
  showLogOnFailure(state: string | undefined): void {
    if (state !== "fail" || this.logShown) return;
    this.logShown = true;
    process.stderr.write(`gateway log:\n${this.gatewayLog()}\n`);
  }

  /** For afterAll: destroys the gateway if it still runs, then removes everything of this user. */
  async dispose(): Promise<void> {
    if (this.gatewayPid()) await this.run(["gateway", "destroy", "--yes"]);
    this.cleanUp();
  }

  /** Last resort after a failed test: SIGKILL whatever this user left running, then delete it all. */
  cleanUp(): void {
    const gateway = this.gatewayPid();
    if (gateway) process.kill(gateway, "SIGKILL");
    for (const pid of [...pidsOf(/openshell-driver-vm/, this.root), ...this.qemuPids()])
      process.kill(pid, "SIGKILL");
    rmSync(this.root, { recursive: true, force: true });
  }
}
