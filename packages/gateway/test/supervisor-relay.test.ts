import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { SandboxPhase } from "@openshell/proto";
import { type RunningGateway, rpcFailure, supervisorTokenOf } from "@openshell/testing/gateway-harness";
import { freePort, waitFor } from "@openshell/testing/process";
import {
  execOutput,
  freezeGatewayUntilSessionFails,
  openFdCount,
  type ReadySandbox,
  run,
  sshOptions,
  startGatewayWithSupervisors,
  startReadySandbox,
  stopReadySandbox,
  supervisorLog,
  supervisorPid,
  waitForPhase,
  waitForSessionsEstablished,
} from "@openshell/testing/sandbox-harness";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** Sends a raw CONNECT and returns the status code of the answer. */
function connectStatus(port: number, headers: Record<string, string>, method = "CONNECT"): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: "/connect/ssh", headers });
    req.on("connect", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("real supervisor: relays, SSH through the gateway, exec", () => {
  let sandbox: ReadySandbox | undefined;
  let gw: RunningGateway;
  let stateDir: string;
  let workdir: string;
  let sandboxId: string;
  let token: string;
  const NAME = "relay-box";

  beforeAll(async () => {
    sandbox = await startReadySandbox(NAME);
    ({ gw, stateDir, workdir, id: sandboxId } = sandbox);
    token = (await gw.grpc.createSshSession({ sandboxId })).token;
  }, 60_000);

  afterAll(async () => {
    if (sandbox) await stopReadySandbox(sandbox, "SIGTERM");
  });

  it("runs a command through OpenSSH, the ssh-proxy, the gateway and a relay", async () => {
    const result = await run("ssh", [
      ...sshOptions(gw, sandboxId, token),
      "sandbox",
      "id -un; pwd; echo oops >&2; exit 3",
    ]);
    expect(result.stderr).toContain("oops");
    expect(result.stdout.toString()).toBe(`nobody\n${workdir}\n`);
    expect(result.code).toBe(3);
  });

  it("children inherit no descriptors from the supervisor before any terminal was opened", async () => {
    // The supervisor itself may have inherited descriptors without close-on-exec from whoever
    // started it (the test harness does): the prelude closes those too.
    const listed = await execOutput(
      gw.grpc.execSandbox({ sandboxId, command: ["ls", "-1", "/proc/self/fd"] }),
    );
    expect(listed.stdout.trim().split("\n")).toEqual(["0", "1", "2", "3"]);
  });

  it("gives an interactive login shell on a PTY through the gateway (ssh -tt)", async () => {
    const result = await run(
      "ssh",
      [...sshOptions(gw, sandboxId, token), "-tt", "-o", "SetEnv=TERM=xterm-256color", "sandbox"],
      { input: 'tty; echo "term=$TERM"; exit 4\n' },
    );
    const output = result.stdout.toString();
    expect(output).toMatch(/\/dev\/pts\/\d+/);
    expect(output).toContain("term=xterm-256color");
    expect(result.code).toBe(4);
  });

  it("moves 50 MiB intact", async () => {
    const payload = randomBytes(50 * 1024 * 1024);
    const result = await run("ssh", [...sshOptions(gw, sandboxId, token), "sandbox", "sha256sum"], {
      input: payload,
      timeoutMs: 60_000,
    });
    expect(result.code).toBe(0);
    expect(result.stdout.toString().split(" ")[0]).toBe(sha256(payload));
  }, 90_000);

  it("puts and gets files with sftp", async () => {
    const local = mkdtempSync(join(tmpdir(), "ossftp-"));
    try {
      const data = randomBytes(1024 * 1024);
      writeFileSync(join(local, "up.bin"), data);
      const batch = join(local, "batch");
      writeFileSync(
        batch,
        `put ${join(local, "up.bin")} ${workdir}/up.bin\nget ${workdir}/up.bin ${join(local, "down.bin")}\n`,
      );
      const result = await run("sftp", [...sshOptions(gw, sandboxId, token), "-b", batch, "sandbox"]);
      expect(result.code, result.stderr).toBe(0);
      expect(sha256(readFileSync(join(local, "down.bin")))).toBe(sha256(data));
      expect(statSync(join(workdir, "up.bin")).uid).toBe(65534);
    } finally {
      rmSync(local, { recursive: true, force: true });
    }
  });

  it("forwards a local port to a service inside the sandbox", async () => {
    const echo = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const localPort = await freePort();
    const forward = (await import("node:child_process")).spawn(
      "ssh",
      [
        ...sshOptions(gw, sandboxId, token),
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        `${localPort}:127.0.0.1:${echoPort}`,
        "sandbox",
      ],
      { stdio: "ignore" },
    );
    try {
      let answer = "";
      await waitFor(
        async () => {
          answer = await new Promise<string>((resolve) => {
            const client = net.connect(localPort, "127.0.0.1");
            client.on("error", () => resolve(""));
            client.on("connect", () => client.end("through the tunnel"));
            let data = "";
            client.on("data", (chunk) => {
              data += chunk;
            });
            client.on("close", () => resolve(data));
          });
          return answer === "through the tunnel";
        },
        15_000,
        () => `port forward did not echo (got '${answer}')`,
      );
    } finally {
      forward.kill("SIGTERM");
      echo.close();
    }
  });

  it("ExecSandbox streams stdout, stderr and the exit code, feeds stdin, and times out with 124", async () => {
    const result = await execOutput(
      gw.grpc.execSandbox({
        sandboxId,
        command: ["sh", "-c", 'cat; echo "to err $GREETING" >&2; pwd; exit 5'],
        stdin: Buffer.from("from stdin\n"),
        environment: { GREETING: "hello world" },
        workdir: "/tmp",
      }),
    );
    expect(result).toEqual({ stdout: "from stdin\n/tmp\n", stderr: "to err hello world\n", exitCode: 5 });

    const started = Date.now();
    const slow = await execOutput(
      gw.grpc.execSandbox({ sandboxId, command: ["sleep", "30"], timeoutSeconds: 1 }),
    );
    expect(slow.exitCode).toBe(124);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("children inherit no descriptors from the supervisor, even while a PTY session is open", async () => {
    const held = execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sleep", "2"], tty: true }));
    await new Promise((r) => setTimeout(r, 500));
    const listed = await execOutput(
      gw.grpc.execSandbox({ sandboxId, command: ["ls", "-1", "/proc/self/fd"] }),
    );
    // 0-2 plus the directory ls itself opened.
    expect(listed.stdout.trim().split("\n")).toEqual(["0", "1", "2", "3"]);
    expect((await held).exitCode).toBe(0);
  });

  it("ExecSandbox rejects bad input and unknown sandboxes", async () => {
    expect(await rpcFailure(execOutput(gw.grpc.execSandbox({ sandboxId, command: [] })))).toMatchObject({
      code: Code.InvalidArgument,
    });
    expect(
      await rpcFailure(execOutput(gw.grpc.execSandbox({ sandboxId: "nope", command: ["true"] }))),
    ).toMatchObject({
      code: Code.NotFound,
    });
    expect(
      await rpcFailure(
        execOutput(gw.grpc.execSandbox({ sandboxId, command: ["x"], environment: { "BAD-KEY": "1" } })),
      ),
    ).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("BAD-KEY") });
  });

  it("answers CONNECT /connect/ssh with upstream's status codes", async () => {
    expect(await connectStatus(gw.port, {}, "GET")).toBe(405);
    expect(await connectStatus(gw.port, { "x-sandbox-id": sandboxId })).toBe(401);
    expect(await connectStatus(gw.port, { "x-sandbox-id": sandboxId, "x-sandbox-token": "" })).toBe(400);
    expect(
      await connectStatus(gw.port, { "x-sandbox-id": sandboxId, "x-sandbox-token": "not-a-token" }),
    ).toBe(401);
    expect(await connectStatus(gw.port, { "x-sandbox-id": "other", "x-sandbox-token": token })).toBe(401);
    const revocable = (await gw.grpc.createSshSession({ sandboxId })).token;
    expect((await gw.grpc.revokeSshSession({ token: revocable })).revoked).toBe(true);
    expect(await connectStatus(gw.port, { "x-sandbox-id": sandboxId, "x-sandbox-token": revocable })).toBe(
      401,
    );
  });

  it("caps connections per token at 3", async () => {
    const capped = (await gw.grpc.createSshSession({ sandboxId })).token;
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        held.push(
          await new Promise<net.Socket>((resolve, reject) => {
            const req = http.request({
              host: "127.0.0.1",
              port: gw.port,
              method: "CONNECT",
              path: "/connect/ssh",
              headers: { "x-sandbox-id": sandboxId, "x-sandbox-token": capped },
            });
            req.on("connect", (res, socket) =>
              res.statusCode === 200 ? resolve(socket) : reject(new Error(`status ${res.statusCode}`)),
            );
            req.on("error", reject);
            req.end();
          }),
        );
      }
      expect(await connectStatus(gw.port, { "x-sandbox-id": sandboxId, "x-sandbox-token": capped })).toBe(
        429,
      );
    } finally {
      for (const socket of held) socket.destroy();
    }
    await waitFor(
      async () =>
        (await connectStatus(gw.port, { "x-sandbox-id": sandboxId, "x-sandbox-token": "x" })) === 401,
      2000,
      () => "gateway stopped answering",
    );
  });

  it("a client that hangs up on an open relay ends it at the gateway and the supervisor at once", async () => {
    const endings = () =>
      supervisorLog(stateDir, sandboxId)
        .split("\n")
        .filter((line) => /NET:(CLOSE|FAIL) .*relay (closed|bridge failed)/.test(line)).length;
    const before = endings();
    const HANGUPS = 20;
    for (let i = 0; i < HANGUPS; i++) {
      // CONNECT, the SSH server's banner, then the client goes away before its version line: half
      // of them with a FIN, half with a reset (the gateway then cancels the relay's stream).
      await new Promise<void>((resolve, reject) => {
        const req = http.request({
          host: "127.0.0.1",
          port: gw.port,
          method: "CONNECT",
          path: "/connect/ssh",
          headers: { "x-sandbox-id": sandboxId, "x-sandbox-token": token },
        });
        req.on("connect", (res, socket, head) => {
          expect(res.statusCode).toBe(200);
          const hangUp = () => {
            socket.once("close", () => resolve());
            if (i % 2 === 0) socket.destroy();
            else socket.resetAndDestroy();
          };
          if (head.length > 0) hangUp();
          else socket.once("data", hangUp);
        });
        req.on("error", reject);
        req.end();
      });
    }
    // Before the fix the supervisor kept every one of them open (its SSH server waiting for the
    // client's version line), and thousands of them made nghttp2 refuse new relays.
    await waitFor(
      () => endings() - before >= HANGUPS,
      10_000,
      () =>
        `${endings() - before} of ${HANGUPS} relays ended at the supervisor; its log ends:\n${supervisorLog(stateDir, sandboxId).trim().split("\n").slice(-6).join("\n")}`,
    );
  });

  it("rejects relays without init, without a credential, or for unknown channels, and leaks nothing", async () => {
    const fdsBefore = openFdCount(gw.pid);
    const frames = (
      ...list: Array<{
        payload: { case: "init"; value: { channelId: string } } | { case: "data"; value: Uint8Array };
      }>
    ) =>
      (async function* () {
        for (const frame of list) yield frame as never;
      })();
    const drain = async (stream: AsyncIterable<unknown>) => {
      for await (const _ of stream) {
        // drain
      }
    };
    const tokenHeader = { authorization: `Bearer ${supervisorTokenOf(stateDir, sandboxId)}` };
    expect(await rpcFailure(drain(gw.grpc.relayStream(frames(), { headers: tokenHeader })))).toEqual({
      code: Code.InvalidArgument,
      message: "empty RelayStream",
    });
    expect(
      await rpcFailure(
        drain(
          gw.grpc.relayStream(frames({ payload: { case: "data", value: new Uint8Array([1]) } }), {
            headers: tokenHeader,
          }),
        ),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "first RelayFrame must be init with non-empty channel_id",
    });
    expect(
      await rpcFailure(
        drain(
          gw.grpc.relayStream(frames({ payload: { case: "init", value: { channelId: "nope" } } }), {
            headers: tokenHeader,
          }),
        ),
      ),
    ).toEqual({ code: Code.NotFound, message: "unknown or expired relay channel" });
    expect(
      await rpcFailure(
        drain(gw.grpc.relayStream(frames({ payload: { case: "init", value: { channelId: "nope" } } }))),
      ),
    ).toMatchObject({ code: Code.Unauthenticated });
    // Many execs whose clients go away early.
    for (let i = 0; i < 20; i++) {
      const abort = new AbortController();
      const stream = gw.grpc.execSandbox({ sandboxId, command: ["sleep", "5"] }, { signal: abort.signal });
      setTimeout(() => abort.abort(), 300);
      await execOutput(stream).catch(() => undefined);
    }
    await waitFor(
      () => openFdCount(gw.pid) <= fdsBefore + 2,
      10_000,
      () => `gateway fds grew from ${fdsBefore} to ${openFdCount(gw.pid)}`,
    );
  });
});

describe("faults with a real supervisor", () => {
  const sandboxes: ReadySandbox[] = [];

  afterEach(async () => {
    for (const sandbox of sandboxes.splice(0)) await stopReadySandbox(sandbox, "SIGKILL");
  });

  async function setup(name: string, env?: Record<string, string>) {
    const sandbox = await startReadySandbox(name, { env });
    sandboxes.push(sandbox);
    return sandbox;
  }

  it("after kill -9 of the gateway the supervisor reconnects to the restarted gateway and SSH works again", async () => {
    const sandbox = await setup("phoenix");
    const { gw, stateDir, workdir, id } = sandbox;
    const token = (await gw.grpc.createSshSession({ sandboxId: id })).token;
    await gw.stop("SIGKILL");
    const again = await startGatewayWithSupervisors({ stateDir, workdir, port: gw.port });
    sandbox.gw = again;
    await waitForPhase(again, "phoenix", SandboxPhase.READY, 30_000);
    const result = await run("ssh", [...sshOptions(again, id, token), "sandbox", "echo back"]);
    expect(result.stdout.toString()).toBe("back\n");
  }, 60_000);

  it("a superseding session wins the race with the session it replaced", async () => {
    const { gw, stateDir, id } = await setup("contested");
    const supervisorToken = supervisorTokenOf(stateDir, id);
    let endFake: () => void = () => undefined;
    const fakeEnded = new Promise<void>((resolve) => {
      endFake = resolve;
    });
    const outbound = (async function* () {
      yield { payload: { case: "hello", value: { sandboxId: id, instanceId: "usurper" } } } as never;
      await fakeEnded;
    })();
    const session = gw.grpc.connectSupervisor(outbound, {
      headers: { authorization: `Bearer ${supervisorToken}` },
    });
    const iterator = session[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.payload.case).toBe("sessionAccepted");
    // The real supervisor's old session ends now; that must not demote the sandbox.
    for (let i = 0; i < 10; i++) {
      expect((await gw.grpc.getSandbox({ name: "contested" })).sandbox?.phase).toBe(SandboxPhase.READY);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The real supervisor reconnects (backoff 1 s) and supersedes the usurper in turn.
    await waitForSessionsEstablished(stateDir, id, 2, 10_000);
    // Its stream ends (after the config_changed that follows SessionAccepted, if not yet read).
    const ended = () => iterator.next().catch(() => ({ done: true as const, value: undefined }));
    let rest = await ended();
    while (!rest.done && rest.value.payload.case === "configChanged") rest = await ended();
    expect(rest.done).toBe(true);
    endFake();
    expect((await gw.grpc.getSandbox({ name: "contested" })).sandbox?.phase).toBe(SandboxPhase.READY);
  });

  it("HTTP/2 keepalive notices a gateway that stopped answering, and the session comes back", async () => {
    const sandbox = await setup("pinged", {
      OPENSHELL_KEEPALIVE_INTERVAL_MS: "300",
      OPENSHELL_KEEPALIVE_TIMEOUT_MS: "500",
    });
    const { gw, stateDir, id } = sandbox;
    await freezeGatewayUntilSessionFails(sandbox);
    // Reconnected: a second "established" line, and the sandbox is READY on the same gateway.
    await waitForSessionsEstablished(stateDir, id, 2);
    await waitForPhase(gw, "pinged", SandboxPhase.READY, 20_000);
  }, 40_000);

  it("ships the supervisor's log lines to the gateway", async () => {
    const { gw, id } = await setup("chatty");
    await waitFor(
      async () =>
        (await gw.grpc.getSandboxLogs({ sandboxId: id, sources: ["sandbox"] })).logs.some((line) =>
          line.message.includes("supervisor session established"),
        ),
      10_000,
      () => "no supervisor log lines reached the gateway",
    );
    const lines = (await gw.grpc.getSandboxLogs({ sandboxId: id, sources: ["sandbox"] })).logs;
    expect(lines.every((line) => line.source === "sandbox" && line.sandboxId === id)).toBe(true);
    expect(lines.some((line) => line.level === "OCSF")).toBe(true);
  });

  it("a killed supervisor takes the sandbox out of READY", async () => {
    const { gw, stateDir, id } = await setup("fragile");
    process.kill(supervisorPid(stateDir, id), "SIGKILL");
    await waitFor(
      async () => (await gw.grpc.getSandbox({ name: "fragile" })).sandbox?.phase !== SandboxPhase.READY,
      10_000,
      () => "sandbox stayed READY after its supervisor died",
    );
    const token = (await gw.grpc.createSshSession({ sandboxId: id }).catch(() => ({ token: "" }))).token;
    expect(token).toBe("");
  });
});
