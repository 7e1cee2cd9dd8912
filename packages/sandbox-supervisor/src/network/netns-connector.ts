import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import type { Logger } from "@openshell/core";
import { TOOL_PATH } from "./tool-path.js";

/**
 * The helper that runs inside the namespace: a Unix socket server (paths are not per network
 * namespace) that takes `HOST PORT\n`, connects there from inside the namespace and answers
 * `OK <remote address>\n` followed by the bytes, or `ERR <message>\n`.
 */
const HELPER = `
const net = require("node:net"), fs = require("node:fs");
const path = process.argv[1];
try { fs.unlinkSync(path); } catch {}
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  let head = Buffer.alloc(0);
  client.on("error", () => client.destroy());
  const onData = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf(10);
    if (end < 0) { if (head.length > 300) client.destroy(); return; }
    client.off("data", onData);
    client.pause();
    const [host, port] = head.subarray(0, end).toString().split(" ");
    const rest = head.subarray(end + 1);
    const upstream = net.connect({ host, port: Number(port), allowHalfOpen: true });
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      client.write("OK " + upstream.remoteAddress + "\\n");
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", (error) => {
      if (!connected) client.end("ERR " + error.message + "\\n"); else client.destroy();
    });
    client.on("close", () => upstream.destroy());
  };
  client.on("data", onData);
});
server.listen(path, () => { fs.chmodSync(path, 0o600); process.stdout.write("ready\\n"); });
`;

export interface LoopbackConnection {
  socket: net.Socket;
  /** Where the connection led inside the namespace (checked to be loopback by the caller). */
  remoteAddress: string;
}

/**
 * Connects to loopback services of the sandbox's network namespace for `ssh -L` (`openshell
 * forward`): the supervisor lives outside it and Node cannot `setns`, so a small Node helper runs in
 * the namespace (`ip netns exec`), started on the first forward and kept, and carries each
 * connection over a private Unix socket.
 */
export class NetnsConnector {
  private helper: Promise<void> | undefined;
  private child: ChildProcess | undefined;

  constructor(
    private readonly netnsName: string,
    private readonly socketPath: string,
    private readonly logger: Logger,
  ) {}

  async connect(host: string, port: number): Promise<LoopbackConnection> {
    await this.start();
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path: this.socketPath, allowHalfOpen: true });
      let head = Buffer.alloc(0);
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      socket.once("error", fail);
      socket.once("end", () =>
        fail(new Error(parseError(head) ?? "the namespace helper closed the connection")),
      );
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf(10);
        if (end < 0) return;
        socket.off("data", onData);
        socket.off("error", fail);
        socket.removeAllListeners("end");
        socket.pause();
        const line = head.subarray(0, end).toString();
        const rest = head.subarray(end + 1);
        if (!line.startsWith("OK ")) {
          fail(new Error(parseError(head) ?? line));
          return;
        }
        if (rest.length > 0) socket.unshift(rest);
        resolve({ socket, remoteAddress: line.slice(3) });
      };
      socket.on("data", onData);
      socket.write(`${host} ${port}\n`);
    });
  }

  close(): void {
    this.child?.kill("SIGTERM");
  }

  private start(): Promise<void> {
    if (this.helper && this.child?.exitCode === null) return this.helper;
    const child = spawn(
      "ip",
      ["netns", "exec", this.netnsName, process.execPath, "-e", HELPER, this.socketPath],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: TOOL_PATH },
      },
    );
    this.child = child;
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-500);
    });
    this.helper = new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) resolve();
      });
      child.once("error", reject);
      child.once("exit", (code) => {
        reject(new Error(`the namespace helper exited (${code}): ${stderr.trim()}`));
        this.logger.debug({ code }, "netns connector helper exited");
      });
    });
    return this.helper;
  }
}

function parseError(head: Buffer): string | undefined {
  const line = head.toString().split("\n")[0] ?? "";
  return line.startsWith("ERR ") ? line.slice(4) : undefined;
}
