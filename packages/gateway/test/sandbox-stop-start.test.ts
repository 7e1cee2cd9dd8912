import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import {
  execOutput,
  makeWorkdir,
  startGatewayWithSupervisors,
  supervisorLog,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { afterEach, describe, expect, it } from "vitest";

/** The real supervisors started for a test: their argv names the test's own workdir. */
const supervisorsOf = (workdir: string) => pidsOf(/openshell-sandbox\.js$/, workdir);

/** Every phase a WatchSandbox (follow status) reports until `stop` is called. */
function recordPhases(gw: RunningGateway, sandboxId: string) {
  const phases: SandboxPhase[] = [];
  const abort = new AbortController();
  const done = (async () => {
    try {
      for await (const event of gw.grpc.watchSandbox(
        { id: sandboxId, followStatus: true },
        { signal: abort.signal },
      )) {
        if (event.payload.case === "sandbox") {
          const phase = event.payload.value.phase;
          if (phases.at(-1) !== phase) phases.push(phase);
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    phases,
    async stop() {
      abort.abort();
      await done;
    },
  };
}

async function expectPhaseHolds(gw: RunningGateway, name: string, phase: SandboxPhase, forMs: number) {
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    expect((await gw.grpc.getSandbox({ name })).sandbox?.phase).toBe(phase);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("sandbox stop and start", () => {
  const gateways: RunningGateway[] = [];
  const dirs: string[] = [];
  const workdirs: string[] = [];

  afterEach(async () => {
    for (const gw of gateways.splice(0)) await gw.stop("SIGKILL");
    for (const workdir of workdirs.splice(0)) {
      for (const pid of supervisorsOf(workdir)) process.kill(pid, "SIGKILL");
      rmSync(workdir, { recursive: true, force: true });
    }
    for (const dir of dirs.splice(0)) removeStateDir(dir);
  });

  it("stop ends the supervisor and stays STOPPED across a gateway restart; start brings it back READY with its files", async () => {
    const stateDir = makeStateDir();
    const workdir = makeWorkdir();
    dirs.push(stateDir);
    workdirs.push(workdir);
    const gw = await startGatewayWithSupervisors({ stateDir, workdir });
    gateways.push(gw);
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "napper" })).sandbox!.id;
    await waitForPhase(gw, "napper", SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\nsupervisor log:\n${supervisorLog(stateDir, id)}`);
    });
    const wrote = await execOutput(
      gw.grpc.execSandbox({ sandboxId: id, command: ["sh", "-c", `echo kept > ${workdir}/kept.txt`] }),
    );
    expect(wrote.exitCode).toBe(0);

    const watch = recordPhases(gw, id);
    const stopped = await gw.grpc.stopSandbox({ name: "napper" });
    expect(stopped.sandbox?.phase).toBe(SandboxPhase.STOPPED);
    expect(supervisorsOf(workdir)).toEqual([]);
    await waitFor(
      () => watch.phases.includes(SandboxPhase.STOPPED),
      5_000,
      () => `watch saw ${watch.phases.map((p) => SandboxPhase[p]).join(",")}`,
    );
    await watch.stop();
    expect(watch.phases).toEqual([SandboxPhase.READY, SandboxPhase.STOPPING, SandboxPhase.STOPPED]);
    // The session ended and the driver reported the supervisor gone: neither turns it into
    // PROVISIONING or ERROR.
    await expectPhaseHolds(gw, "napper", SandboxPhase.STOPPED, 1_500);
    const ready = stopped.sandbox?.status?.conditions.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "False", reason: "Stopped" });

    const hint = "sandbox napper is stopped; start it with: openshell sandbox start napper";
    const exec = await rpcFailure(execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["true"] })));
    expect(exec).toEqual({ code: Code.FailedPrecondition, message: hint });
    expect(await rpcFailure(gw.grpc.createSshSession({ sandboxId: id }))).toEqual({
      code: Code.FailedPrecondition,
      message: hint,
    });
    // Idempotent: stopping again answers the stopped sandbox.
    expect((await gw.grpc.stopSandbox({ name: "napper" })).sandbox?.phase).toBe(SandboxPhase.STOPPED);

    await gw.stop("SIGTERM");
    gateways.splice(gateways.indexOf(gw), 1);
    const again = await startGatewayWithSupervisors({ stateDir, workdir, port: gw.port });
    gateways.push(again);
    await expectPhaseHolds(again, "napper", SandboxPhase.STOPPED, 3_000);
    expect(supervisorsOf(workdir)).toEqual([]);

    const watchStart = recordPhases(again, id);
    const started = await again.grpc.startSandbox({ name: "napper" });
    expect([SandboxPhase.STARTING, SandboxPhase.READY]).toContain(started.sandbox?.phase);
    await waitForPhase(again, "napper", SandboxPhase.READY);
    await watchStart.stop();
    expect(watchStart.phases).toEqual([SandboxPhase.STOPPED, SandboxPhase.STARTING, SandboxPhase.READY]);
    expect(supervisorsOf(workdir)).toHaveLength(1);
    const read = await execOutput(
      again.grpc.execSandbox({ sandboxId: id, command: ["cat", `${workdir}/kept.txt`] }),
    );
    expect(read).toMatchObject({ stdout: "kept\n", exitCode: 0 });
    // Idempotent: starting a running sandbox answers it as it is.
    expect((await again.grpc.startSandbox({ name: "napper" })).sandbox?.phase).toBe(SandboxPhase.READY);
  }, 90_000);

  it("a sandbox the user stopped is stopped again when its driver boots it anyway", async () => {
    const stateDir = makeStateDir();
    const workdir = makeWorkdir();
    dirs.push(stateDir);
    workdirs.push(workdir);
    const gw = await startGatewayWithSupervisors({ stateDir, workdir });
    gateways.push(gw);
    await gw.grpc.createSandbox({ spec: {}, name: "stubborn" });
    await waitForPhase(gw, "stubborn", SandboxPhase.READY);
    await gw.grpc.stopSandbox({ name: "stubborn" });
    await gw.stop("SIGTERM");
    gateways.splice(gateways.indexOf(gw), 1);
    // A driver that lost the stop (its own state says nothing about it) boots the sandbox again.
    const driverState = join(stateDir, "drv", "sandboxes.json");
    writeFileSync(
      driverState,
      readFileSync(driverState, "utf8").replaceAll('\\"Stopped\\"', '\\"Starting\\"'),
    );

    const again = await startGatewayWithSupervisors({ stateDir, workdir, port: gw.port });
    gateways.push(again);
    await waitFor(
      () => again.output().includes("Server listening") && supervisorsOf(workdir).length === 0,
      15_000,
      () => `the supervisor of the stopped sandbox still runs:\n${again.output().slice(-3000)}`,
    );
    await expectPhaseHolds(again, "stubborn", SandboxPhase.STOPPED, 2_000);
    expect(supervisorsOf(workdir)).toEqual([]);
  }, 60_000);

  it("a driver without stop and start: the error says so and the sandbox is left as it was", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startGateway({ stateDir, env: { OPENSHELL_TEST_DRIVER_NO_STOP_START: "1" } });
    gateways.push(gw);
    await gw.grpc.createSandbox({ spec: {}, name: "plain" });
    const before = (await gw.grpc.getSandbox({ name: "plain" })).sandbox?.phase;
    const stop = await rpcFailure(gw.grpc.stopSandbox({ name: "plain" }));
    expect(stop.code).toBe(Code.Unimplemented);
    expect(stop.message).toContain("the compute driver 'test' cannot stop sandboxes");
    expect((await gw.grpc.getSandbox({ name: "plain" })).sandbox?.phase).toBe(before);

    await gw.grpc.createSandbox({ spec: { environment: { TEST_DRIVER_ERROR: "boom" } }, name: "broken" });
    await waitForPhase(gw, "broken", SandboxPhase.ERROR);
    const start = await rpcFailure(gw.grpc.startSandbox({ name: "broken" }));
    expect(start.code).toBe(Code.Unimplemented);
    expect(start.message).toContain("the compute driver 'test' cannot start sandboxes");
    expect((await gw.grpc.getSandbox({ name: "broken" })).sandbox?.phase).toBe(SandboxPhase.ERROR);
  });

  it("bad requests: no name, unknown sandbox, a sandbox being deleted", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startGateway({ stateDir });
    gateways.push(gw);
    expect((await rpcFailure(gw.grpc.stopSandbox({ name: "" }))).code).toBe(Code.InvalidArgument);
    const unknown = await rpcFailure(gw.grpc.startSandbox({ name: "ghost" }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.message).toContain("sandbox 'ghost' not found");
    await gw.grpc.createSandbox({ spec: {}, name: "going" });
    await gw.grpc.deleteSandbox({ name: "going" });
    const deleting = await rpcFailure(gw.grpc.stopSandbox({ name: "going" }));
    // Either still DELETING (FAILED_PRECONDITION) or already gone (NOT_FOUND), never a stop.
    expect([Code.FailedPrecondition, Code.NotFound]).toContain(deleting.code);
  });
});
