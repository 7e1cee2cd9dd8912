import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { type Duplex, duplexPair } from "node:stream";
import { emitOcsf, type Logger } from "@openshell/core";
import type ssh2 from "ssh2";
import type { Connection } from "ssh2";
import { ChildConfiner, type ChildConfinerOptions } from "../confinement/child-confiner.js";
import { findSetpriv } from "../process/parent-death-signal.js";
import { generateHostKey } from "./host-key.js";
import { resolveRunAsUser } from "./run-as-user.js";
import { SshConnectionHandler } from "./ssh-connection-handler.js";
import type { SshServerContext } from "./ssh-context.js";
import { listenOnSupervisorSocket } from "./supervisor-socket.js";

export interface SandboxSshServerOptions {
  /** Unix socket to serve on; its directory is made root-only (0700). */
  socketPath: string;
  /** Account shells and commands run as (default "sandbox"); must exist in /etc/passwd. */
  runAsUser?: string;
  /** Working directory of every shell, command and sftp-server (default "/sandbox"). */
  workdir?: string;
  /** Extra variables for every child, on top of the login environment. */
  env?: Record<string, string>;
  logger: Logger;
  /** sftp-server binary; default: the first of the usual OpenSSH locations that exists. */
  sftpServerPath?: string;
  /**
   * Confines every shell, command and sftp-server with the native launcher. Omitted: children
   * only switch user (the test-only supervisor mode and the SSH test harness).
   */
  confinement?: Omit<ChildConfinerOptions, "user" | "workdir" | "logger">;
  /** Where `ssh -L` connects (the sandbox's network namespace); default: this process's own. */
  connectLoopback?: SshServerContext["connectLoopback"];
}

// ssh2's index also loads its client, agent, key generator and HTTP agents; the server module
// alone starts ~0.2 s sooner in a sandbox VM under TCG. (Loaded once: require's cache.)
export const loadSshServer = () => createRequire(import.meta.url)("ssh2/lib/server.js") as typeof ssh2.Server;

export const DEFAULT_RUN_AS_USER = "sandbox";
export const DEFAULT_WORKDIR = "/sandbox";
const SFTP_SERVER_PATHS = [
  "/usr/lib/openssh/sftp-server",
  "/usr/lib/sftp-server",
  "/usr/libexec/sftp-server",
];
const DISCONNECT_GRACE_MS = 500;
/** Buffered per direction on an in-process connection before the writer is told to wait. */
const IN_PROCESS_BUFFER_BYTES = 64 * 1024;

/**
 * The supervisor's SSH server: OpenSSH-compatible shells, exec, sftp and loopback port forwarding
 * for the sandbox user, served on a root-only Unix socket that the gateway's relays dial. There
 * is no TCP listener.
 */
export class SandboxSshServer {
  private readonly sockets = new Set<Duplex>();
  private readonly connections = new Set<SshConnectionHandler>();
  private nextConnectionId = 1;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly listener: net.Server,
    private readonly ssh: InstanceType<typeof ssh2.Server>,
    private readonly context: SshServerContext,
    readonly socketPath: string,
  ) {
    listener.on("connection", (socket) => this.accept(socket));
    listener.on("error", (error) => this.fail(`SSH socket listener error: ${error.message}`));
    ssh.on("connection", (client: Connection) => this.track(client));
    ssh.on("error", (error: Error) => this.fail(`SSH server error: ${error.message}`));
  }

  static async start(options: SandboxSshServerOptions): Promise<SandboxSshServer> {
    const user = resolveRunAsUser(options.runAsUser ?? DEFAULT_RUN_AS_USER);
    const workdir = options.workdir ?? DEFAULT_WORKDIR;
    const context: SshServerContext = {
      logger: options.logger,
      user,
      workdir,
      env: { ...options.env },
      sftpServerPath: options.sftpServerPath ?? SFTP_SERVER_PATHS.find((path) => existsSync(path)),
      setprivPath: findSetpriv(),
      switchUser: process.getuid?.() !== user.uid,
      confiner: options.confinement
        ? new ChildConfiner({ ...options.confinement, user, workdir, logger: options.logger })
        : undefined,
      connectLoopback: options.connectLoopback,
    };
    if (!context.sftpServerPath) {
      options.logger.warn("no sftp-server found; sftp, scp and editor remote sessions will not work");
    }
    const SshServer = loadSshServer();
    const ssh = new SshServer({ hostKeys: [generateHostKey()], ident: "OpenShell" });
    const listener = net.createServer();
    const server = new SandboxSshServer(listener, ssh, context, options.socketPath);
    await listenOnSupervisorSocket(listener, options.socketPath);
    emitOcsf(options.logger, {
      class: "SSH",
      activity: "LISTEN",
      message: `SSH server listening on ${options.socketPath}`,
      fields: {
        socket: options.socketPath,
        run_as_user: user.name,
        workdir: context.workdir,
        confined: context.confiner !== undefined,
      },
    });
    return server;
  }

  /**
   * How this server's children start (user, variables, confinement): the supervisor starts its
   * workload the same way, so it gets the same confinement and environment as a shell.
   */
  get children(): Pick<SshServerContext, "user" | "env" | "confiner" | "switchUser"> {
    const { user, env, confiner, switchUser } = this.context;
    return { user, env, confiner, switchUser };
  }

  /**
   * Why children cannot be confined with the installed policy (launcher missing, `--check`
   * failing); undefined: they can, or the server does not confine.
   */
  confinementProblem(): Promise<string | undefined> {
    return this.context.confiner?.probe() ?? Promise.resolve(undefined);
  }

  /** Stops listening, hangs up every child, then ends every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const listening = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    await Promise.all([...this.connections].map((connection) => connection.close()));
    // Give the disconnect messages a moment to go out; then cut whatever is left, including
    // connections that never got as far as the SSH handshake.
    const sockets = [...this.sockets];
    const closed = Promise.all(
      sockets.map((socket) => new Promise((resolve) => socket.once("close", resolve))),
    );
    const grace = setTimeout(() => {
      for (const socket of sockets) socket.destroy();
    }, DISCONNECT_GRACE_MS);
    await closed;
    clearTimeout(grace);
    await listening;
    emitOcsf(this.context.logger, {
      class: "SSH",
      activity: "CLOSE",
      message: `SSH server on ${this.socketPath} stopped`,
      fields: { socket: this.socketPath },
    });
  }

  /**
   * A connection to this server inside the process, for the gateway's relays: the relay's bytes
   * reach ssh2 without a write and a read through the Unix socket (a syscall and a kernel copy each
   * way per chunk; relay-bench measured the supervisor's CPU per MiB). The caller owns the returned
   * end; destroying it ends the connection.
   */
  connectInProcess(): Duplex {
    const [serverEnd, clientEnd] = duplexPair({ highWaterMark: IN_PROCESS_BUFFER_BYTES });
    // duplexPair ends do not tear each other down (see the gateway's supervisor-session-registry).
    serverEnd.once("close", () => clientEnd.destroy());
    clientEnd.once("close", () => serverEnd.destroy());
    // As the listener's sockets (allowHalfOpen false): the client's end of input ends the
    // connection; ssh2 would otherwise wait forever on a client that left before its version line.
    serverEnd.once("end", () => serverEnd.end());
    this.accept(serverEnd);
    return clientEnd;
  }

  private accept(socket: Duplex): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    // ssh2 reports socket errors on the client once it exists; this covers the moments before.
    socket.on("error", () => {});
    // ssh2 needs only a Duplex (its remote address fields stay empty for an in-process one).
    this.ssh.injectSocket(socket as net.Socket);
  }

  private track(client: Connection): void {
    const id = this.nextConnectionId++;
    const handler = new SshConnectionHandler(client, this.context, id);
    this.connections.add(handler);
    client.once("close", () => this.connections.delete(handler));
    emitOcsf(this.context.logger, {
      class: "SSH",
      activity: "OPEN",
      disposition: "ALLOWED",
      message: "SSH connection accepted",
      fields: { connection_id: id },
    });
  }

  private fail(message: string): void {
    emitOcsf(this.context.logger, { class: "SSH", activity: "FAIL", severity: "LOW", message });
  }
}
