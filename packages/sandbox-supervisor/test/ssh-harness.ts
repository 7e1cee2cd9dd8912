import { spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createLogger } from "@openshell/core";
import { sandboxv1 } from "@openshell/proto";
import { Client, type ClientChannel, type PseudoTtyOptions } from "ssh2";
import { PolicyState } from "../src/policy/policy-state.js";
import { SandboxSshServer, type SandboxSshServerOptions } from "../src/ssh/index.js";

export const NOBODY_UID = 65534;
const PROXY_SCRIPT = new URL("./ssh-unix-proxy.mjs", import.meta.url).pathname;

export interface SshFixture {
  root: string;
  socketPath: string;
  workdir: string;
  server: SandboxSshServer;
  /** Every log line the server wrote, parsed. */
  logs: Array<Record<string, unknown>>;
}

/** A temp tree: root (0711 so nobody can reach the workdir), run/ for the socket, work/ owned by nobody. */
export function makeFixtureDirs(): { root: string; socketPath: string; workdir: string } {
  const root = mkdtempSync(join(tmpdir(), "openshell-ssh-"));
  chmodSync(root, 0o711);
  const workdir = join(root, "work");
  mkdirSync(workdir);
  chownSync(workdir, NOBODY_UID, NOBODY_UID);
  return { root, socketPath: join(root, "run", "ssh.sock"), workdir };
}

export async function startFixture(overrides: Partial<SandboxSshServerOptions> = {}): Promise<SshFixture> {
  const dirs = makeFixtureDirs();
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    name: "ssh-test",
    level: "debug",
    destination: { write: (line: string) => void logs.push(JSON.parse(line)) },
  });
  try {
    const server = await SandboxSshServer.start({
      socketPath: dirs.socketPath,
      runAsUser: "nobody",
      workdir: dirs.workdir,
      env: { OPENSHELL_SANDBOX_NAME: "test-box" },
      logger,
      ...overrides,
    });
    return { ...dirs, server, logs };
  } catch (error) {
    rmSync(dirs.root, { recursive: true, force: true });
    throw error;
  }
}

export function sshOptions(socketPath: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    `ProxyCommand='${process.execPath}' '${PROXY_SCRIPT}' '${socketPath}'`,
  ];
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs an OpenSSH tool (ssh, sftp, scp) to completion; killed after `timeoutMs`. */
export function runTool(
  tool: string,
  args: string[],
  options: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: "pipe" });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on("error", () => {});
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 10_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout);
      resolve({
        code,
        signal,
        stdout: out.toString(),
        stderr: Buffer.concat(stderr).toString(),
        stdoutBytes: out,
      });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** An ssh2 client over the Unix socket, for what the OpenSSH CLI cannot script (resize, signals). */
export function connectClient(
  socketPath: string,
  sock: net.Socket = net.connect(socketPath),
): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once("ready", () => resolve(client));
    client.once("error", reject);
    client.connect({ sock, username: "sandbox", readyTimeout: 5000 });
  });
}

export function execChannel(
  client: Client,
  command: string,
  options: { pty?: PseudoTtyOptions } = {},
): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    const callback = (error: Error | undefined, channel: ClientChannel) =>
      error ? reject(error) : resolve(channel);
    if (options.pty) client.exec(command, { pty: options.pty }, callback);
    else client.exec(command, callback);
  });
}

/** Collects a channel's stdout as text and resolves `waitFor(pattern)` once it has appeared. */
export class ChannelOutput {
  text = "";
  private waiters: Array<{ pattern: RegExp; resolve: (match: RegExpMatchArray) => void }> = [];

  constructor(channel: ClientChannel) {
    channel.on("data", (chunk: Buffer) => {
      this.text += chunk.toString();
      this.waiters = this.waiters.filter((waiter) => {
        const match = this.text.match(waiter.pattern);
        if (match) waiter.resolve(match);
        return !match;
      });
    });
    channel.stderr.resume();
  }

  waitFor(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const match = this.text.match(pattern);
    if (match) return Promise.resolve(match);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(this.text)}`)),
        timeoutMs,
      );
      this.waiters.push({
        pattern,
        resolve: (found) => {
          clearTimeout(timer);
          resolve(found);
        },
      });
    });
  }
}

export interface ChannelExit {
  code: number | null;
  signal: string | undefined;
}

export function channelExit(channel: ClientChannel): Promise<ChannelExit> {
  return new Promise((resolve) => {
    channel.once("exit", (code: number | null, signal?: string) => resolve({ code, signal }));
  });
}

/** Active handles and requests, by type, leaving out timers (vitest and ssh2 keep some of their own). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) {
    if (type === "Timeout" || type === "Immediate") continue;
    counts[type] = (counts[type] ?? 0) + 1;
  }
  return counts;
}

/** The policy the confinement tests install: the system readable, only /dev/null writable beside the workdir. */
export function confinedTestPolicyState(): PolicyState {
  const state = new PolicyState();
  state.install({
    policy: create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      filesystem: {
        includeWorkdir: true,
        readOnly: ["/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/dev/urandom"],
        readWrite: ["/dev/null"],
      },
      landlock: { compatibility: "best_effort" },
    }),
    version: 1,
    hash: "test",
    source: sandboxv1.PolicySource.SANDBOX,
    origin: "gateway",
  });
  return state;
}
