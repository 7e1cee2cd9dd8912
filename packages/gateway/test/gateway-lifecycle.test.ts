import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { OPENSHELL_VERSION } from "@openshell/core";
import {
  SandboxPhase,
  type SandboxStreamEvent,
  ServiceStatus,
  SupervisorMessageSchema,
} from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startGateway,
  supervisorTokenOf,
} from "@openshell/testing/gateway-harness";
import { isAlive, waitFor } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";

const running: RunningGateway[] = [];
const dirs: string[] = [];

async function gateway(options: Parameters<typeof startGateway>[0] = { stateDir: "" }) {
  const stateDir = options.stateDir || makeStateDir();
  if (!options.stateDir) dirs.push(stateDir);
  const gw = await startGateway({ ...options, stateDir });
  running.push(gw);
  return gw;
}

afterEach(async () => {
  for (const gw of running.splice(0)) await gw.stop("SIGKILL");
  for (const dir of dirs.splice(0)) removeStateDir(dir);
});

describe("gateway CRUD over gRPC and Connect", () => {
  it("serves Health on both protocols", async () => {
    const gw = await gateway();
    expect((await gw.grpc.health({})).status).toBe(ServiceStatus.HEALTHY);
    expect((await gw.connect.health({})).version).toMatch(/\d+\.\d+\.\d+/);
    const readyz = await fetch(`${gw.url}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toMatchObject({ status: "healthy" });
  });

  it("creates, gets, lists with paging, and deletes through the driver", async () => {
    const gw = await gateway();
    const created = (await gw.grpc.createSandbox({ spec: {}, name: "alpha" })).sandbox!;
    expect(created).toMatchObject({ name: "alpha", namespace: "default", phase: SandboxPhase.PROVISIONING });
    expect(created.spec?.template?.image).toBe("openshell/test-sandbox:latest");
    const generated = (await gw.grpc.createSandbox({ spec: {} })).sandbox!;
    expect(generated.name).toMatch(/^[a-z]+-[a-z]+$/);

    await waitFor(
      async () =>
        (await gw.grpc.getSandbox({ name: "alpha" })).sandbox?.status?.conditions[0]?.reason === "Starting",
      5000,
      () => "driver snapshot never applied",
    );
    expect((await gw.grpc.listSandboxes({})).sandboxes.map((s) => s.name)).toEqual(["alpha", generated.name]);
    expect((await gw.grpc.listSandboxes({ limit: 1, offset: 1 })).sandboxes.map((s) => s.name)).toEqual([
      generated.name,
    ]);
    expect((await gw.connect.listSandboxes({ limit: 5000 })).sandboxes).toHaveLength(2);

    expect(await rpcFailure(gw.grpc.createSandbox({ spec: {}, name: "alpha" }))).toEqual({
      code: Code.AlreadyExists,
      message: "sandbox 'alpha' already exists",
    });

    expect((await gw.grpc.deleteSandbox({ name: "alpha" })).deleted).toBe(true);
    const during = (await gw.grpc.getSandbox({ name: "alpha" }).catch(() => undefined))?.sandbox;
    if (during) expect(during.phase).toBe(SandboxPhase.DELETING);
    await waitFor(
      async () => (await gw.grpc.listSandboxes({})).sandboxes.length === 1,
      5000,
      () => "row not removed",
    );
    expect((await rpcFailure(gw.grpc.getSandbox({ name: "alpha" }))).code).toBe(Code.NotFound);
  });

  it("rolls the row back when the driver fails to create", async () => {
    const gw = await gateway();
    const failure = await rpcFailure(
      gw.grpc.createSandbox({
        spec: { environment: { TEST_DRIVER_FAIL_CREATE: "disk full" } },
        name: "doomed",
      }),
    );
    expect(failure.code).toBe(Code.Internal);
    expect(failure.message).toBe("create sandbox failed: disk full");
    expect((await rpcFailure(gw.grpc.getSandbox({ name: "doomed" }))).code).toBe(Code.NotFound);
    const rejected = await rpcFailure(
      gw.grpc.createSandbox({
        spec: { environment: { TEST_DRIVER_REJECT: "no capacity" } },
        name: "nope",
      }),
    );
    expect(rejected).toEqual({ code: Code.FailedPrecondition, message: "no capacity" });
    expect((await gw.grpc.listSandboxes({})).sandboxes).toHaveLength(0);
  });

  it("two creates of one name at once: one sandbox, the other ALREADY_EXISTS with the usual message", async () => {
    const gw = await gateway();
    const outcomes = await Promise.allSettled(
      [1, 2, 3].map(() => gw.grpc.createSandbox({ spec: {}, name: "twin" })),
    );
    expect(outcomes.filter((outcome) => outcome.status === "fulfilled")).toHaveLength(1);
    for (const outcome of outcomes.filter((o) => o.status === "rejected")) {
      expect(await rpcFailure(Promise.reject(outcome.reason))).toEqual({
        code: Code.AlreadyExists,
        message: "sandbox 'twin' already exists",
      });
    }
    expect((await gw.grpc.listSandboxes({})).sandboxes.map((s) => s.name)).toEqual(["twin"]);
  });

  it("answers bad input with the right status and keeps serving", async () => {
    const gw = await gateway();
    expect(await rpcFailure(gw.grpc.createSandbox({ name: "x" }))).toEqual({
      code: Code.InvalidArgument,
      message: "spec is required",
    });
    expect((await rpcFailure(gw.grpc.createSandbox({ spec: {}, name: "Bad Name" }))).code).toBe(
      Code.InvalidArgument,
    );
    const env = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`K${i}`, "v"]));
    expect((await rpcFailure(gw.grpc.createSandbox({ spec: { environment: env } }))).message).toMatch(
      /129 entries; the limit is 128/,
    );
    expect((await rpcFailure(gw.grpc.createSandbox({ spec: { providers: ["ghost"] } }))).message).toBe(
      "provider 'ghost' not found",
    );
    expect((await rpcFailure(gw.grpc.getSandbox({ name: "ghost" }))).code).toBe(Code.NotFound);
    expect((await rpcFailure(gw.grpc.deleteSandbox({ name: "ghost" }))).code).toBe(Code.NotFound);
    expect(
      (
        await rpcFailure(
          gw.grpc.createSandbox({ spec: { environment: { BIG: "x".repeat(2 * 1024 * 1024) } } }),
        )
      ).code,
    ).toBe(Code.ResourceExhausted);

    const wrongType = await fetch(`${gw.url}/openshell.v1.OpenShell/ListSandboxes`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    expect(wrongType.status).toBe(415);
    const badJson = await fetch(`${gw.url}/openshell.v1.OpenShell/ListSandboxes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(badJson.status).toBe(400);
    // An undecodable protobuf body is the caller's fault: INVALID_ARGUMENT (upstream's tonic says
    // INTERNAL; rpc-protocol-answers.test.ts covers Connect and streaming calls too).
    expect(
      await rawGrpcStatus(
        gw.port,
        "/openshell.v1.OpenShell/CreateSandbox",
        Buffer.from([0, 0, 0, 0, 3, 0xff, 0xff, 0xff]),
      ),
    ).toBe(String(Code.InvalidArgument));
    expect((await gw.grpc.health({})).status).toBe(ServiceStatus.HEALTHY);
  });
});

describe("watch and gateway-owned readiness", () => {
  it("streams snapshot, platform events and logs, and READY when a supervisor session connects", async () => {
    const gw = await gateway();
    const sandbox = (await gw.grpc.createSandbox({ spec: {}, name: "watched" })).sandbox!;
    const events: SandboxStreamEvent[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      for await (const event of gw.grpc.watchSandbox(
        { id: sandbox.id, followStatus: true, followEvents: true, followLogs: true, stopOnTerminal: true },
        { signal: abort.signal },
      )) {
        events.push(event);
      }
    })();
    await waitFor(
      () => events.some((e) => e.payload.case === "event"),
      5000,
      () => `no platform event: ${JSON.stringify(events.map((e) => e.payload.case))}`,
    );

    // The generated client plays the supervisor here (supervisor-relay.test.ts runs the real one).
    const outbound = supervisorStream(sandbox.id);
    const session = gw.grpc.connectSupervisor(outbound.iterable, {
      signal: abort.signal,
      headers: { authorization: `Bearer ${supervisorTokenOf(gw.stateDir, sandbox.id)}` },
    });
    const iterator = session[Symbol.asyncIterator]();
    const accepted = await iterator.next();
    expect(accepted.value?.payload.case).toBe("sessionAccepted");
    expect(accepted.value?.payload.value).toMatchObject({ heartbeatIntervalSecs: 15 });

    await watching;
    const last = events.filter((e) => e.payload.case === "sandbox").at(-1);
    expect(last?.payload.case === "sandbox" && last.payload.value.phase).toBe(SandboxPhase.READY);
    expect(
      events.some(
        (e) => e.payload.case === "log" && e.payload.value.message.includes("PROVISIONING -> READY"),
      ),
    ).toBe(true);

    // A later driver snapshot (reconcile) does not demote it while the session lives.
    await new Promise((r) => setTimeout(r, 300));
    expect((await gw.grpc.getSandbox({ name: "watched" })).sandbox?.phase).toBe(SandboxPhase.READY);

    // Session ends -> demoted to PROVISIONING.
    outbound.end();
    await waitFor(
      async () =>
        (await gw.grpc.getSandbox({ name: "watched" })).sandbox?.phase === SandboxPhase.PROVISIONING,
      5000,
      () => "not demoted",
    );
    const logs = await gw.grpc.getSandboxLogs({ sandboxId: sandbox.id });
    expect(logs.logs.map((l) => l.message)).toContain("phase READY -> PROVISIONING");
    abort.abort();
  });

  it("reports a supervisor of another version than the gateway's as a Warning event", async () => {
    const gw = await gateway();
    const sandbox = (await gw.grpc.createSandbox({ spec: {}, name: "versions" })).sandbox!;
    const mismatches: string[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      for await (const event of gw.grpc.watchSandbox(
        { id: sandbox.id, followEvents: true },
        { signal: abort.signal },
      )) {
        if (event.payload.case === "event" && event.payload.value.reason === "SupervisorVersionMismatch")
          mismatches.push(`${event.payload.value.type}: ${event.payload.value.message}`);
      }
    })().catch(() => undefined);
    const connect = async (version: string) => {
      const outbound = supervisorStream(sandbox.id, version);
      const session = gw.grpc.connectSupervisor(outbound.iterable, {
        signal: abort.signal,
        headers: { authorization: `Bearer ${supervisorTokenOf(gw.stateDir, sandbox.id)}` },
      });
      expect((await session[Symbol.asyncIterator]().next()).value?.payload.case).toBe("sessionAccepted");
      return outbound;
    };

    const same = await connect(OPENSHELL_VERSION);
    await new Promise((r) => setTimeout(r, 300));
    expect(mismatches).toEqual([]);
    same.end();
    const older = await connect("0.0.1-older");
    await waitFor(
      () => mismatches.length > 0,
      5000,
      () => "no SupervisorVersionMismatch event",
    );
    expect(mismatches[0]).toContain("Warning: the sandbox's supervisor is version 0.0.1-older");
    expect(mismatches[0]).toContain(`the gateway ${OPENSHELL_VERSION}`);
    older.end();
    abort.abort();
    await watching;
  });

  it("after a restart a sandbox is READY again only once its supervisor is back", async () => {
    const gw = await gateway();
    const sandbox = (await gw.grpc.createSandbox({ spec: {}, name: "restarted" })).sandbox!;
    const headers = { authorization: `Bearer ${supervisorTokenOf(gw.stateDir, sandbox.id)}` };
    const first = supervisorStream(sandbox.id);
    const session = gw.grpc.connectSupervisor(first.iterable, { headers });
    expect((await session[Symbol.asyncIterator]().next()).value?.payload.case).toBe("sessionAccepted");
    expect((await gw.grpc.getSandbox({ name: "restarted" })).sandbox?.phase).toBe(SandboxPhase.READY);

    await gw.stop("SIGKILL");
    running.splice(running.indexOf(gw), 1);
    first.end();
    const again = await gateway({ stateDir: gw.stateDir, port: gw.port });
    expect((await again.grpc.getSandbox({ name: "restarted" })).sandbox?.phase).toBe(
      SandboxPhase.PROVISIONING,
    );

    const second = supervisorStream(sandbox.id);
    const resumed = again.grpc.connectSupervisor(second.iterable, { headers });
    expect((await resumed[Symbol.asyncIterator]().next()).value?.payload.case).toBe("sessionAccepted");
    await waitFor(
      async () => (await again.grpc.getSandbox({ name: "restarted" })).sandbox?.phase === SandboxPhase.READY,
      5000,
      () => "not READY after the supervisor came back",
    );
    second.end();
  });

  it("accepts a supervisor only with its own sandbox's credential", async () => {
    const gw = await gateway();
    const a = (await gw.grpc.createSandbox({ spec: {}, name: "sandbox-a" })).sandbox!;
    const b = (await gw.grpc.createSandbox({ spec: {}, name: "sandbox-b" })).sandbox!;
    const tokenA = supervisorTokenOf(gw.stateDir, a.id);
    const hello = (sandboxId: string, authorization?: string) =>
      rpcFailure(
        (async () => {
          const outbound = supervisorStream(sandboxId);
          const headers = authorization ? { authorization } : undefined;
          for await (const _ of gw.grpc.connectSupervisor(outbound.iterable, { headers })) {
            outbound.end();
          }
        })(),
      );
    expect(await hello(b.id)).toMatchObject({ code: Code.Unauthenticated });
    expect(await hello(b.id, `Bearer ${tokenA}`)).toEqual({
      code: Code.PermissionDenied,
      message: `supervisor credential belongs to sandbox ${a.id}, not ${b.id}`,
    });
    const forged = `${tokenA.split(".").slice(0, 2).join(".")}.${Buffer.alloc(32).toString("base64url")}`;
    expect(await hello(a.id, `Bearer ${forged}`)).toEqual({
      code: Code.Unauthenticated,
      message: "supervisor credential signature is invalid",
    });
    // The credential survives a gateway restart (the signing key is in the store).
    await gw.stop("SIGTERM");
    running.splice(running.indexOf(gw), 1);
    const again = await gateway({ stateDir: gw.stateDir, port: gw.port });
    const outbound = supervisorStream(a.id);
    const session = again.grpc.connectSupervisor(outbound.iterable, {
      headers: { authorization: `Bearer ${tokenA}` },
    });
    const first = await session[Symbol.asyncIterator]().next();
    expect(first.value?.payload.case).toBe("sessionAccepted");
    outbound.end();
  });
});

describe("crashes and restarts", () => {
  it("restarts a crashed driver and keeps its sandboxes", async () => {
    const gw = await gateway();
    await gw.grpc.createSandbox({ spec: {}, name: "survivor" });
    const pidFile = join(gw.stateDir, "drv", "driver.pid");
    const firstPid = Number(readFileSync(pidFile, "utf8"));
    process.kill(firstPid, "SIGKILL");
    await waitFor(
      () => gw.output().includes("compute driver crashed; restarting it"),
      5000,
      () => gw.output(),
    );
    await waitFor(
      () =>
        Number(readFileSync(pidFile, "utf8")) !== firstPid &&
        gw.output().split('"msg":"compute driver ready"').length >= 3,
      10_000,
      () => gw.output(),
    );
    expect((await gw.grpc.getSandbox({ name: "survivor" })).sandbox?.name).toBe("survivor");
    // The new driver works: create and delete go through it.
    await gw.grpc.createSandbox({ spec: {}, name: "after-crash" });
    await gw.grpc.deleteSandbox({ name: "after-crash" });
    await waitFor(
      async () => (await gw.grpc.listSandboxes({})).sandboxes.length === 1,
      5000,
      () => "delete did not complete after restart",
    );
  });

  it("keeps rows across a gateway restart on the same SQLite file, and SIGTERM exits cleanly", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const first = await gateway({ stateDir });
    await first.grpc.createSandbox({ spec: { environment: { KEEP: "me" } }, name: "persistent" });
    const driverPid = Number(readFileSync(join(stateDir, "drv", "driver.pid"), "utf8"));
    const exit = await first.stop("SIGTERM");
    expect(exit).toEqual({ code: 0, signal: null });
    expect(first.output()).toContain('"msg":"stopped"');
    await waitFor(
      () => !isAlive(driverPid),
      5000,
      () => "driver outlived the gateway",
    );

    const second = await gateway({ stateDir });
    const sandbox = (await second.grpc.getSandbox({ name: "persistent" })).sandbox!;
    expect(sandbox.spec?.environment).toEqual({ KEEP: "me" });
    expect(Number(sandbox.createdAtMs)).toBeGreaterThan(0);
  });

  it("the driver exits when the gateway is killed with SIGKILL", async () => {
    const gw = await gateway();
    const driverPid = Number(readFileSync(join(gw.stateDir, "drv", "driver.pid"), "utf8"));
    await gw.stop("SIGKILL");
    await waitFor(
      () => !isAlive(driverPid),
      5000,
      () => "driver survived its gateway",
    );
  });

  it("fails to start with a clear message when the driver binary is missing", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const started = startGateway({
      stateDir,
      extraArgs: ["--driver-dir", "/nonexistent"],
      env: { PATH: "/usr/bin" },
    });
    // Should it start after all, track it so afterEach stops it instead of leaking a process.
    started.then(
      (gw) => running.push(gw),
      () => undefined,
    );
    await expect(started).rejects.toThrow(/compute driver binary 'openshell-driver-test' not found/);
  });
});

function supervisorStream(sandboxId: string, version = OPENSHELL_VERSION) {
  let close: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => {
    close = resolve;
  });
  async function* iterable() {
    yield create(SupervisorMessageSchema, {
      payload: { case: "hello", value: { sandboxId, instanceId: "test-instance", version } },
    });
    await ended;
  }
  return { iterable: iterable(), end: () => close() };
}

/** Sends a raw gRPC request (bypassing any client library) and returns the grpc-status trailer. */
function rawGrpcStatus(port: number, path: string, body: Buffer): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    let status: string | undefined;
    req.on("response", (headers) => {
      if (headers["grpc-status"]) status = String(headers["grpc-status"]);
    });
    req.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"]);
    });
    req.on("data", () => undefined);
    req.on("end", () => {
      session.close();
      resolve(status);
    });
    req.end(body);
  });
}
