import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { readlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PeerAddress, ProcessIdentityResolver } from "./process-identity.js";

/** A python3 client that opens connections and changes namespace on command (one answer line each). */
const CLIENT = `
import ctypes, os, socket, sys
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
socks = []
print("ready", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "connect":
        s = socket.create_connection(("127.0.0.1", int(args[0])))
        socks.append(s)
        print(s.getsockname()[1], flush=True)
    elif command == "unshare":
        print(libc.unshare(CLONE_NEWNET), flush=True)
    elif command == "setns":
        print(libc.setns(os.open(args[0], os.O_RDONLY), CLONE_NEWNET), flush=True)
`;

class Client {
  private readonly answers: string[] = [];
  private readonly waiters: Array<(line: string) => void> = [];
  readonly child: ChildProcessWithoutNullStreams;

  constructor(prefix: string[] = []) {
    const [command = "python3", ...args] = [...prefix, "python3", "-c", CLIENT];
    this.child = spawn(command, args, { stdio: "pipe" });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(line);
      else this.answers.push(line);
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  next(): Promise<string> {
    const line = this.answers.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async send(command: string): Promise<string> {
    this.child.stdin.write(`${command}\n`);
    return this.next();
  }

  /** Connects to the server; the connection's peer address as a proxy would see it. */
  async connect(serverPort: number): Promise<PeerAddress> {
    return { address: "127.0.0.1", port: Number(await this.send(`connect ${serverPort}`)) };
  }
}

describe("ProcessIdentityResolver (real sockets held by python3 children)", () => {
  // The test's own namespace is the "sandbox": `procNetDir` is read through this process, which the
  // resolver never returns (it is the supervisor's place).
  const procNetDir = `/proc/${process.pid}/net`;
  let server: Server;
  const accepted: Socket[] = [];
  let serverAddress: PeerAddress;
  const clients: Client[] = [];

  const start = async (prefix: string[] = []) => {
    const client = new Client(prefix);
    clients.push(client);
    expect(await client.next()).toBe("ready");
    return client;
  };

  beforeAll(async () => {
    server = createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    serverAddress = { address: "127.0.0.1", port: (server.address() as { port: number }).port };
  });

  afterAll(async () => {
    for (const client of clients) client.child.kill();
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it("finds the process holding the client socket, and the next owner after it, not the last one", async () => {
    const resolver = new ProcessIdentityResolver();
    const first = await start();
    const second = await start();
    const firstPeer = await first.connect(serverAddress.port);
    const identity = await resolver.resolve(procNetDir, firstPeer, serverAddress);
    expect(identity?.pid).toBe(first.pid);
    expect(identity?.path).toBe(readlinkSync(`/proc/${first.pid}/exe`));
    expect(identity?.label).toBe(`${identity?.path.split("/").pop()}(${first.pid})`);
    expect(identity?.cmdlinePaths).toEqual([]);
    // The resolver now tries `first` first (a recent owner), which still holds a connection to the
    // same server: the hint must be checked against the socket, never taken.
    const secondPeer = await second.connect(serverAddress.port);
    expect((await resolver.resolve(procNetDir, secondPeer, serverAddress))?.pid).toBe(second.pid);
    expect((await resolver.resolve(procNetDir, firstPeer, serverAddress))?.pid).toBe(first.pid);
  });

  it("answers undefined for a peer with no socket", async () => {
    const resolver = new ProcessIdentityResolver();
    // Port 1 as the client's own port: nothing in the table.
    expect(await resolver.resolve(procNetDir, { address: "127.0.0.1", port: 1 }, serverAddress)).toBe(
      undefined,
    );
  });

  describe.skipIf(process.getuid?.() !== 0)("namespaces (root)", () => {
    it("never returns a process that has left the namespace, though it still holds the socket", async () => {
      const resolver = new ProcessIdentityResolver();
      const client = await start();
      const peer = await client.connect(serverAddress.port);
      expect((await resolver.resolve(procNetDir, peer, serverAddress))?.pid).toBe(client.pid);
      // It moves to a namespace of its own: the socket stays in this namespace's table and in its fds,
      // and it is the resolver's most recent owner with a cached namespace.
      expect(await client.send("unshare")).toBe("0");
      expect(readlinkSync(`/proc/${client.pid}/ns/net`)).not.toBe(readlinkSync("/proc/self/ns/net"));
      expect(await resolver.resolve(procNetDir, peer, serverAddress)).toBe(undefined);
    });

    it("finds a process that entered the namespace after the resolver saw it outside", async () => {
      const resolver = new ProcessIdentityResolver();
      const outsider = await start(["unshare", "--net"]);
      // A lookup while it is outside: the resolver caches its namespace.
      const other = await start();
      const otherPeer = await other.connect(serverAddress.port);
      expect((await resolver.resolve(procNetDir, otherPeer, serverAddress))?.pid).toBe(other.pid);
      expect(await outsider.send(`setns /proc/${process.pid}/ns/net`)).toBe("0");
      const peer = await outsider.connect(serverAddress.port);
      expect((await resolver.resolve(procNetDir, peer, serverAddress))?.pid).toBe(outsider.pid);
    });
  });
});
