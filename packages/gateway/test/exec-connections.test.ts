import { execFileSync } from "node:child_process";
import { Code } from "@connectrpc/connect";
import { SandboxPhase } from "@openshell/proto";
import { rpcFailure } from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import {
  execOutput,
  freezeGatewayUntilSessionFails,
  type ReadySandbox,
  sessionsEstablished,
  startReadySandbox,
  stopReadySandbox,
  supervisorLog,
  supervisorPid,
  waitForPhase,
  waitForSessionsEstablished,
} from "@openshell/testing/sandbox-harness";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/** What the supervisor's SSH server logs for every connection it accepts. */
const SSH_ACCEPTED = "SSH connection accepted";
/** The gateway's caps (sessions/sandbox-exec-connections.ts DEFAULT_EXEC_CONNECTION_LIMITS). */
const CONNECTIONS_PER_SANDBOX = 3;
const RUNNING_PER_SANDBOX = 3 * 10;
const QUEUED_PER_SANDBOX = 64;

const sshConnectionsSeen = (stateDir: string, sandboxId: string) =>
  supervisorLog(stateDir, sandboxId).split(SSH_ACCEPTED).length - 1;

/** Processes whose command line contains `text` (the sandbox's commands run as `nobody`). */
function processCount(text: string): number {
  try {
    return Number(execFileSync("pgrep", ["-c", "-f", text], { encoding: "utf8" }).trim());
  } catch {
    return 0;
  }
}

describe("ExecSandbox under load: one pool of SSH connections per sandbox", () => {
  let sandbox: ReadySandbox;
  beforeAll(async () => {
    sandbox = await startReadySandbox("busy-box");
  }, 60_000);
  afterAll(async () => {
    if (sandbox) await stopReadySandbox(sandbox, "SIGKILL");
  });

  it("runs 50 concurrent execs, all successfully, over at most 3 SSH connections", async () => {
    const { gw, stateDir, id } = sandbox;
    const before = sshConnectionsSeen(stateDir, id);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        execOutput(
          gw.grpc.execSandbox({
            sandboxId: id,
            command: ["sh", "-c", 'read line; echo "$line $N"; exit $((N % 7))'],
            environment: { N: String(i) },
            stdin: Buffer.from(`run\n`),
          }),
        ),
      ),
    );
    results.forEach((result, i) => {
      expect(result).toEqual({ stdout: `run ${i}\n`, stderr: "", exitCode: i % 7 });
    });
    const opened = sshConnectionsSeen(stateDir, id) - before;
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(CONNECTIONS_PER_SANDBOX);
  }, 60_000);

  it("queues past the running cap and answers RESOURCE_EXHAUSTED past the queue bound", async () => {
    const { gw, id } = sandbox;
    const marker = "71.25";
    const abort = new AbortController();
    const held = Array.from({ length: RUNNING_PER_SANDBOX + QUEUED_PER_SANDBOX }, () =>
      execOutput(
        gw.grpc.execSandbox({ sandboxId: id, command: ["sleep", marker] }, { signal: abort.signal }),
      ),
    );
    try {
      await waitFor(
        () => processCount(`sleep ${marker}`) >= RUNNING_PER_SANDBOX,
        30_000,
        () => `only ${processCount(`sleep ${marker}`)} commands started`,
      );
      // The other 64 are queued by now (their requests arrived before the connections were up).
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(processCount(`sleep ${marker}`)).toBe(RUNNING_PER_SANDBOX);
      const refused = await rpcFailure(execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["true"] })));
      expect(refused.code).toBe(Code.ResourceExhausted);
      expect(refused.message).toContain(`${QUEUED_PER_SANDBOX} more are waiting`);
    } finally {
      abort.abort();
      await Promise.allSettled(held);
    }
    // Cancelled commands were hung up and their slots given back.
    await waitFor(
      () => processCount(`sleep ${marker}`) === 0,
      10_000,
      () => "cancelled commands kept running",
    );
    expect(await execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["echo", "free"] }))).toMatchObject(
      {
        stdout: "free\n",
        exitCode: 0,
      },
    );
  }, 90_000);

  it("keeps stdin, environment, workdir, exit codes and the timeout (124) on a shared connection", async () => {
    const { gw, id } = sandbox;
    const [first, slow, second] = await Promise.all([
      execOutput(
        gw.grpc.execSandbox({
          sandboxId: id,
          command: ["sh", "-c", 'cat; echo "$GREETING" >&2; pwd; exit 5'],
          stdin: Buffer.from("from stdin\n"),
          environment: { GREETING: "hello" },
          workdir: "/tmp",
        }),
      ),
      execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sleep", "30"], timeoutSeconds: 1 })),
      execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sh", "-c", "exit 3"] })),
    ]);
    expect(first).toEqual({ stdout: "from stdin\n/tmp\n", stderr: "hello\n", exitCode: 5 });
    expect(slow.exitCode).toBe(124);
    expect(second.exitCode).toBe(3);
  });

  it("a killed supervisor fails the running commands with UNAVAILABLE instead of leaving them hanging", async () => {
    const { gw, stateDir, id } = sandbox;
    const running = [0, 1, 2].map(() =>
      rpcFailure(execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sleep", "60.5"] }))),
    );
    await waitFor(
      () => processCount("sleep 60.5") === 3,
      15_000,
      () => "commands did not start",
    );
    process.kill(supervisorPid(stateDir, id), "SIGKILL");
    const started = Date.now();
    for (const failure of await Promise.all(running)) {
      expect(failure.code).toBe(Code.Unavailable);
      expect(failure.message).toContain("lost while the command ran");
    }
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 40_000);
});

describe("ExecSandbox after the supervisor's connection died", () => {
  const sandboxes: ReadySandbox[] = [];
  afterEach(async () => {
    for (const sandbox of sandboxes.splice(0)) await stopReadySandbox(sandbox, "SIGKILL");
  });

  it("drops the pooled connections of a replaced supervisor session and execs on a fresh one", async () => {
    // Short HTTP/2 keepalive: freezing the gateway makes the supervisor reconnect, and the relays
    // (with the pooled SSH connections in them) die with its old connection.
    const sandbox = await startReadySandbox("rejoined", {
      env: { OPENSHELL_KEEPALIVE_INTERVAL_MS: "300", OPENSHELL_KEEPALIVE_TIMEOUT_MS: "500" },
    });
    sandboxes.push(sandbox);
    const { gw, stateDir, id } = sandbox;
    expect((await execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["echo", "warm"] }))).stdout).toBe(
      "warm\n",
    );
    const running = rpcFailure(
      execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sleep", "59.5"] })),
    );
    await waitFor(
      () => processCount("sleep 59.5") === 1,
      15_000,
      () => "command did not start",
    );
    const connectionsBefore = sshConnectionsSeen(stateDir, id);
    const sessionsBefore = sessionsEstablished(stateDir, id);
    await freezeGatewayUntilSessionFails(sandbox);
    await waitForSessionsEstablished(stateDir, id, sessionsBefore + 1);
    await waitForPhase(gw, "rejoined", SandboxPhase.READY, 20_000);
    const lost = await running;
    expect(lost.code).toBe(Code.Unavailable);
    const after = await execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["echo", "again"] }));
    expect(after).toEqual({ stdout: "again\n", stderr: "", exitCode: 0 });
    expect(sshConnectionsSeen(stateDir, id)).toBe(connectionsBefore + 1);
  }, 90_000);
});
