import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
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
      // VM sandboxes boot cold unless a test asks for templates (on by default for users): a
      // template is one more VM booting in the background of the first create.
      OPENSHELL_VM_TEMPLATES: "off",
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

/**
 * The steps every driver's CLI flow shares, as a user runs them against a READY sandbox. Each
 * asserts what the user must see.
 */

/** `sandbox ssh-config` written to `<root>/ssh_config`, then OpenSSH with it runs `echo MARKER; id -un`. */
export async function checkSshConfig(
  user: CliSandboxUser,
  sandbox: string,
  marker = "via-ssh",
): Promise<{ file: string; text: string }> {
  const config = await user.run(["sandbox", "ssh-config", sandbox]);
  expect(config.code, config.stderr).toBe(0);
  const file = join(user.root, "ssh_config");
  writeFileSync(file, config.stdout);
  const output = execFileSync("ssh", ["-F", file, `openshell-${sandbox}`, `echo ${marker}; id -un`], {
    env: user.env,
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(output).toBe(`${marker}\nsandbox\n`);
  return { file, text: config.stdout };
}

/**
 * A tree (`a.txt`, `sub/blob.bin` of `blobBytes` random bytes, and `extraFiles`) uploaded to
 * /sandbox/project and downloaded again into `<root>/down`: the same bytes come back.
 */
export async function checkUploadDownload(
  user: CliSandboxUser,
  sandbox: string,
  options: { blobBytes?: number; extraFiles?: Record<string, string> } = {},
): Promise<{ local: string; back: string }> {
  const local = mkdtempSync(join(user.root, "up-"));
  mkdirSync(join(local, "sub"));
  writeFileSync(join(local, "a.txt"), "alpha\n");
  writeFileSync(join(local, "sub", "blob.bin"), randomBytes(options.blobBytes ?? 1024 * 1024));
  for (const [name, content] of Object.entries(options.extraFiles ?? {}))
    writeFileSync(join(local, name), content);
  const upload = await user.run(["sandbox", "upload", sandbox, local, "/sandbox/project"]);
  expect(upload.code, upload.stderr).toBe(0);
  const back = join(user.root, "down");
  const download = await user.run(["sandbox", "download", sandbox, "/sandbox/project", back]);
  expect(download.code, download.stderr).toBe(0);
  expect(sha256(join(back, "sub", "blob.bin"))).toBe(sha256(join(local, "sub", "blob.bin")));
  expect(readFileSync(join(back, "a.txt"), "utf8")).toBe("alpha\n");
  return { local, back };
}

/**
 * A file written to /sandbox, `sandbox stop` (phase STOPPED; `whileStopped` checks what the driver
 * made of it), `sandbox start`, and the file is still there.
 */
export async function checkStopStartKeepsWorkspace(
  user: CliSandboxUser,
  sandbox: string,
  options: { stopTimeoutMs: number; startTimeoutMs: number; whileStopped?: () => Promise<void> | void },
): Promise<{ stopped: CliResult; started: CliResult }> {
  const wrote = await user.run([
    "sandbox",
    "exec",
    sandbox,
    "--",
    "sh",
    "-c",
    "echo survived > /sandbox/kept.txt",
  ]);
  expect(wrote.code, wrote.stderr).toBe(0);
  const stopped = await user.run(["sandbox", "stop", sandbox], { timeoutMs: options.stopTimeoutMs });
  expect(stopped.code, stopped.stderr).toBe(0);
  const got = JSON.parse((await user.run(["sandbox", "get", sandbox, "-o", "json"])).stdout);
  expect(got.phase).toBe("SANDBOX_PHASE_STOPPED");
  await options.whileStopped?.();
  const started = await user.run(["sandbox", "start", sandbox], { timeoutMs: options.startTimeoutMs });
  expect(started.code, started.stderr).toBe(0);
  const read = await user.run(["sandbox", "exec", sandbox, "--", "cat", "/sandbox/kept.txt"]);
  expect(read).toMatchObject({ code: 0, stdout: "survived\n" });
  return { stopped, started };
}

export const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
