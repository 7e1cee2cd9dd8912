import { generateKeyPairSync } from "node:crypto";
import net from "node:net";
import { type Duplex, duplexPair } from "node:stream";
import { createLogger, OpenShellError } from "@openshell/core";
import ssh2, { type Connection, type ServerChannel, type Session } from "ssh2";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ExecConnectionLimits,
  SandboxExecConnections,
  type SandboxExecConnectionsDeps,
} from "./sandbox-exec-connections.js";
import type { ExecOutput, ExecRequest } from "./ssh-exec-channel.js";

const SANDBOX = "sb-1";
const logger = createLogger({ name: "test", level: "silent" });

/**
 * A real ssh2 server standing in for the supervisor's: commands are a tiny language so tests can
 * hold channels open, refuse to start them, and count connections and concurrent channels.
 */
class TestSshServer {
  readonly server: InstanceType<typeof ssh2.Server>;
  connections = 0;
  closedConnections = 0;
  peakChannelsPerConnection = 0;
  private readonly live = new Set<Connection>();
  private readonly held = new Map<string, Array<() => void>>();
  /** Connections (1-based) that never confirm a session channel. */
  readonly stallChannelsOn = new Set<number>();
  stalledChannels = 0;

  constructor() {
    const hostKey = generateKeyPairSync("ec", {
      namedCurve: "prime256v1",
      privateKeyEncoding: { type: "sec1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    }).privateKey;
    this.server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Ends every `hold NAME` command with exit 0. */
  release(name: string): void {
    for (const done of this.held.get(name)?.splice(0) ?? []) done();
  }

  heldCount(name: string): number {
    return this.held.get(name)?.length ?? 0;
  }

  close(): Promise<void> {
    for (const client of this.live) client.end();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Connection): void {
    const number = ++this.connections;
    this.live.add(client);
    let channels = 0;
    client.on("authentication", (auth) => auth.accept());
    client.on("error", () => undefined);
    client.on("close", () => {
      this.live.delete(client);
      this.closedConnections++;
    });
    client.on("session", (accept: () => Session) => {
      if (this.stallChannelsOn.has(number)) {
        this.stalledChannels++;
        return;
      }
      const session = accept();
      channels++;
      this.peakChannelsPerConnection = Math.max(this.peakChannelsPerConnection, channels);
      session.once("close", () => channels--);
      session.on("exec", (acceptExec: () => ServerChannel, _reject, info: { command: string }) =>
        this.run(acceptExec(), info.command),
      );
    });
  }

  private run(channel: ServerChannel, command: string): void {
    const [verb, arg = ""] = command.split(" ");
    const exit = (code: number) => {
      channel.exit(code);
      channel.end();
    };
    channel.on("error", () => undefined);
    if (verb === "echo") {
      channel.write(`${arg}\n`);
      exit(0);
    } else if (verb === "cat") {
      const input: Buffer[] = [];
      channel.on("data", (chunk: Buffer) => input.push(chunk));
      channel.on("end", () => {
        channel.write(Buffer.concat(input));
        exit(0);
      });
    } else if (verb === "exit") {
      exit(Number(arg));
    } else if (verb === "hold") {
      const list = this.held.get(arg) ?? [];
      list.push(() => exit(0));
      this.held.set(arg, list);
    } else if (verb === "flood") {
      const chunk = Buffer.alloc(64 * 1024, 120);
      let left = Number(arg);
      const pump = () => {
        while (left > 0) {
          left--;
          if (!channel.write(chunk)) return void channel.once("drain", pump);
        }
        exit(0);
      };
      pump();
    } else exit(127);
  }
}

/**
 * Like the gateway's relays: one end of an in-process duplex pair (half-open allowed, so the far
 * side ending does not close ours), the other end spliced to the SSH server.
 */
function relayTo(port: number, cuts: Array<() => void>): Duplex {
  const [ours, theirs] = duplexPair();
  const socket = net.connect(port, "127.0.0.1");
  theirs.pipe(socket).pipe(theirs);
  socket.on("error", () => theirs.destroy());
  theirs.on("close", () => socket.destroy());
  // A supervisor that dies ends its relay streams without an SSH disconnect.
  cuts.push(() => {
    socket.unpipe(theirs);
    socket.destroy();
    theirs.end();
  });
  return ours;
}

interface Collected {
  stdout: string;
  exitCode: number | undefined;
}

async function collect(output: AsyncIterable<ExecOutput>): Promise<Collected> {
  const result: Collected = { stdout: "", exitCode: undefined };
  for await (const event of output) {
    if (event.kind === "stdout") result.stdout += event.data.toString();
    else if (event.kind === "exit") result.exitCode = event.code;
  }
  return result;
}

async function failure(work: Promise<unknown>): Promise<OpenShellError> {
  try {
    await work;
  } catch (error) {
    expect(error).toBeInstanceOf(OpenShellError);
    return error as OpenShellError;
  }
  throw new Error("expected a failure");
}

async function eventually(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const request = (command: string, extra: Partial<ExecRequest> = {}): ExecRequest => ({
  command,
  stdin: new Uint8Array(),
  tty: false,
  timeoutMs: 0,
  ...extra,
});

describe("SandboxExecConnections", () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(limits: Partial<ExecConnectionLimits> = {}, transport?: () => Duplex) {
    const server = new TestSshServer();
    const port = await server.listen();
    const listeners = new Set<(sandboxId: string) => void>();
    let transportsOpened = 0;
    const cuts: Array<() => void> = [];
    const deps: SandboxExecConnectionsDeps = {
      openTransport: async () => {
        transportsOpened++;
        return transport ? transport() : relayTo(port, cuts);
      },
      onSessionChange: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      logger,
      limits,
    };
    const pool = new SandboxExecConnections(deps);
    cleanups.push(
      () => server.close(),
      () => pool.close(),
    );
    return {
      server,
      pool,
      transportsOpened: () => transportsOpened,
      cutRelays: () => {
        for (const cut of cuts.splice(0)) cut();
      },
      sessionChanged: () => {
        for (const listener of listeners) listener(SANDBOX);
      },
    };
  }

  it("multiplexes 25 concurrent execs on 3 connections of at most 10 channels each", async () => {
    const { server, pool, transportsOpened } = await setup();
    const runs = Array.from({ length: 25 }, () => collect(pool.exec(SANDBOX, request("hold all"))));
    await eventually(() => server.heldCount("all") === 25, "25 running commands");
    expect(pool.snapshot(SANDBOX)).toEqual({ connections: 3, channels: 25, queued: 0 });
    server.release("all");
    expect((await Promise.all(runs)).every((run) => run.exitCode === 0)).toBe(true);
    expect(server.connections).toBe(3);
    expect(transportsOpened()).toBe(3);
    expect(server.peakChannelsPerConnection).toBe(10);
  });

  it("keeps each command's output, exit code and stdin apart on a shared connection", async () => {
    const { pool } = await setup();
    const results = await Promise.all([
      collect(pool.exec(SANDBOX, request("echo one"))),
      collect(pool.exec(SANDBOX, request("cat", { stdin: Buffer.from("two") }))),
      collect(pool.exec(SANDBOX, request("exit 7"))),
    ]);
    expect(results).toEqual([
      { stdout: "one\n", exitCode: 0 },
      { stdout: "two", exitCode: 0 },
      { stdout: "", exitCode: 7 },
    ]);
  });

  it("queues past the caps, runs the queue as channels free, and answers RESOURCE_EXHAUSTED past its bound", async () => {
    const { server, pool } = await setup({
      channelsPerConnection: 2,
      connectionsPerSandbox: 1,
      queuedPerSandbox: 2,
    });
    const running = [0, 1].map(() => collect(pool.exec(SANDBOX, request("hold first"))));
    await eventually(() => server.heldCount("first") === 2, "two running commands");
    const queued = [0, 1].map(() => collect(pool.exec(SANDBOX, request("echo queued"))));
    await eventually(() => pool.snapshot(SANDBOX).queued === 2, "two queued commands");
    const refused = await failure(collect(pool.exec(SANDBOX, request("echo refused"))));
    expect(refused.code).toBe("resource_exhausted");
    expect(refused.message).toContain("retry when some have finished");
    server.release("first");
    expect(await Promise.all([...running, ...queued])).toEqual([
      { stdout: "", exitCode: 0 },
      { stdout: "", exitCode: 0 },
      { stdout: "queued\n", exitCode: 0 },
      { stdout: "queued\n", exitCode: 0 },
    ]);
    expect(server.connections).toBe(1);
  });

  it("drops a queued exec whose client gave up", async () => {
    const { server, pool } = await setup({ channelsPerConnection: 1, connectionsPerSandbox: 1 });
    const running = collect(pool.exec(SANDBOX, request("hold a")));
    await eventually(() => server.heldCount("a") === 1, "a running command");
    const abort = new AbortController();
    const waiting = failure(collect(pool.exec(SANDBOX, request("echo never", { signal: abort.signal }))));
    await eventually(() => pool.snapshot(SANDBOX).queued === 1, "a queued command");
    abort.abort();
    expect((await waiting).code).toBe("canceled");
    expect(pool.snapshot(SANDBOX).queued).toBe(0);
    server.release("a");
    expect((await running).exitCode).toBe(0);
  });

  it("closes a connection after it was idle and opens a new one on demand", async () => {
    const { server, pool } = await setup({ idleCloseMs: 100 });
    expect((await collect(pool.exec(SANDBOX, request("echo a")))).stdout).toBe("a\n");
    expect(pool.snapshot(SANDBOX).connections).toBe(1);
    await eventually(() => server.closedConnections === 1, "the idle connection to close");
    expect(pool.snapshot(SANDBOX)).toEqual({ connections: 0, channels: 0, queued: 0 });
    expect((await collect(pool.exec(SANDBOX, request("echo b")))).stdout).toBe("b\n");
    expect(server.connections).toBe(2);
  });

  it("retries once on a fresh connection an exec whose connection died before the command started", async () => {
    const { server, pool, cutRelays } = await setup();
    server.stallChannelsOn.add(1);
    const run = collect(pool.exec(SANDBOX, request("echo retried")));
    await eventually(() => server.stalledChannels === 1, "a stalled channel");
    cutRelays();
    expect(await run).toEqual({ stdout: "retried\n", exitCode: 0 });
    expect(server.connections).toBe(2);
  });

  it("reports the loss of the connection under a command that had started, with UNAVAILABLE", async () => {
    const { server, pool, cutRelays } = await setup();
    const run = failure(collect(pool.exec(SANDBOX, request("hold forever"))));
    await eventually(() => server.heldCount("forever") === 1, "a running command");
    cutRelays();
    const error = await run;
    expect(error.code).toBe("unavailable");
    expect(error.message).toContain("lost while the command ran");
    expect(server.connections).toBe(1);
    // The next exec gets a fresh connection.
    expect((await collect(pool.exec(SANDBOX, request("echo again")))).stdout).toBe("again\n");
  });

  it("answers DEADLINE_EXCEEDED, for every waiting exec, when the SSH handshake does not finish in time", async () => {
    const silent: Duplex[] = [];
    const { pool } = await setup(
      { handshakeTimeoutMs: 200, channelsPerConnection: 1, connectionsPerSandbox: 1 },
      () => {
        const [ours, theirs] = duplexPair();
        silent.push(theirs);
        return ours;
      },
    );
    const errors = await Promise.all(
      [0, 1, 2].map(() => failure(collect(pool.exec(SANDBOX, request("echo x"))))),
    );
    expect(errors.map((error) => error.code)).toEqual([
      "deadline_exceeded",
      "deadline_exceeded",
      "deadline_exceeded",
    ]);
    expect(errors[0]?.message).toContain("SSH handshake");
    expect(pool.snapshot(SANDBOX)).toEqual({ connections: 0, channels: 0, queued: 0 });
    for (const end of silent) end.destroy();
  });

  it("passes on the transport's own error code (sandbox not reachable)", async () => {
    const server = new TestSshServer();
    cleanups.push(() => server.close());
    const pool = new SandboxExecConnections({
      openTransport: async () => {
        throw new OpenShellError("unavailable", "sandbox sb-1 is not reachable");
      },
      onSessionChange: () => () => undefined,
      logger,
    });
    cleanups.push(() => pool.close());
    const error = await failure(collect(pool.exec(SANDBOX, request("echo x"))));
    expect(error.code).toBe("unavailable");
    expect(pool.snapshot(SANDBOX).connections).toBe(0);
  });

  it("stops using a connection once the supervisor session changed, and closes it when its commands are done", async () => {
    const { server, pool, sessionChanged } = await setup();
    const old = collect(pool.exec(SANDBOX, request("hold old")));
    await eventually(() => server.heldCount("old") === 1, "a running command");
    sessionChanged();
    expect((await collect(pool.exec(SANDBOX, request("echo new")))).stdout).toBe("new\n");
    expect(server.connections).toBe(2);
    expect(server.closedConnections).toBe(0);
    server.release("old");
    expect((await old).exitCode).toBe(0);
    await eventually(() => server.closedConnections === 1, "the retired connection to close");
  });

  it("a consumer that stops reading holds back only its own channel", async () => {
    const { pool } = await setup();
    const flood = pool.exec(SANDBOX, request("flood 256"));
    const first = await flood.next();
    expect(first.value).toMatchObject({ kind: "stdout" });
    // 16 MiB are waiting behind a paused channel; a second command on the same connection runs.
    expect((await collect(pool.exec(SANDBOX, request("echo through")))).stdout).toBe("through\n");
    let bytes = (first.value as { data: Buffer }).data.length;
    for await (const event of flood) if (event.kind === "stdout") bytes += event.data.length;
    expect(bytes).toBe(256 * 64 * 1024);
    expect(pool.snapshot(SANDBOX).connections).toBe(1);
  });

  it("kills a command past its timeout and reports exit 124, keeping the connection", async () => {
    const { server, pool } = await setup();
    expect((await collect(pool.exec(SANDBOX, request("hold slow", { timeoutMs: 100 })))).exitCode).toBe(124);
    expect((await collect(pool.exec(SANDBOX, request("echo after")))).stdout).toBe("after\n");
    expect(server.connections).toBe(1);
  });
});
