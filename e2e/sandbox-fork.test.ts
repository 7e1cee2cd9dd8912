import { readFileSync } from "node:fs";
import { join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { parsePolicyYaml } from "@openshell/policy";
import { SandboxPhase, sandboxv1 } from "@openshell/proto";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { makeStateDir, type RunningGateway, rpcFailure } from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import {
  makeWorkdir,
  startGatewayWithSupervisors,
  stopReadySandbox,
  supervisorLog,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** A test's gateway, directories and source sandbox id, as `stopReadySandbox` cleans them up. */
type Dirs = Parameters<typeof stopReadySandbox>[0];

const DRIVER_REFUSAL =
  "the compute driver 'test' cannot fork sandboxes; fork needs the VM driver (openshell gateway start --driver vm)";

/**
 * ForkSandbox's refusals against a real gateway whose test driver cannot fork (GetCapabilities
 * without supports_fork), through gRPC and through the built CLI: every one leaves the store and the
 * driver as they were. One gateway and one READY sandbox (a real supervisor on this host) serve all
 * cases; the STOPPED case stops it, so it runs last. The fork itself needs the VM driver (its e2e
 * test lives with that driver).
 */
describe("sandbox fork on a driver that cannot fork", () => {
  let sandbox: Dirs;
  let gw: RunningGateway;
  let user: CliSandboxUser;
  const cli = (args: string[]) => user.run(["--gateway-endpoint", gw.url, ...args]);

  const names = async () =>
    (await gw.grpc.listSandboxes({})).sandboxes.map((s) => `${s.name} ${SandboxPhase[s.phase]}`);
  /** The sandbox ids the test driver holds (its state file). */
  const driverIds = () =>
    (JSON.parse(readFileSync(join(sandbox.stateDir, "drv", "sandboxes.json"), "utf8")) as string[]).map(
      (row) => (JSON.parse(row) as { id: string }).id,
    );

  beforeAll(async () => {
    const stateDir = makeStateDir();
    const workdir = makeWorkdir();
    sandbox = { stateDir, workdir, id: "" };
    gw = await startGatewayWithSupervisors({ stateDir, workdir });
    sandbox.gw = gw;
    sandbox.id = (await gw.grpc.createSandbox({ name: "src", spec: {} })).sandbox!.id;
    await waitForPhase(gw, "src", SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\nsupervisor log:\n${supervisorLog(stateDir, sandbox.id)}`);
    });
    user = new CliSandboxUser();
  });

  afterAll(async () => {
    await user?.dispose();
    if (sandbox) await stopReadySandbox(sandbox, "SIGKILL");
  });

  it("gRPC: refused with FAILED_PRECONDITION naming the driver, with and without a new name; nothing stored", async () => {
    const before = await names();
    expect(before).toEqual(["src READY"]);
    for (const newName of ["copy", ""]) {
      expect(await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName }))).toEqual({
        code: Code.FailedPrecondition,
        message: DRIVER_REFUSAL,
      });
    }
    expect(await names()).toEqual(before);
    expect(driverIds()).toEqual([sandbox.id]);
    expect(gw.output()).not.toContain("accepted as a fork");
  });

  it("gRPC: input and source errors come first, with their own codes", async () => {
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "", newName: "copy" }))).toEqual({
      code: Code.InvalidArgument,
      message: "name is required",
    });
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "nope", newName: "copy" }))).toEqual({
      code: Code.NotFound,
      message: "sandbox 'nope' not found; 'openshell sandbox list' shows the sandboxes that exist",
    });
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName: "src" }))).toEqual({
      code: Code.AlreadyExists,
      message: "sandbox 'src' already exists",
    });
    const invalid = await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName: "Bad_Name" }));
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.message).toContain("sandbox name 'Bad_Name' is invalid");
    expect(await names()).toEqual(["src READY"]);
  });

  it("CLI: the gateway's refusals with their exit codes; an empty --name never reaches it", async () => {
    const cases: [string[], number, string][] = [
      [["src", "--name", "copy"], 5, DRIVER_REFUSAL],
      [["src"], 5, DRIVER_REFUSAL],
      [["nope"], 4, "sandbox 'nope' not found"],
      [["src", "--name", "src"], 1, "sandbox 'src' already exists"],
      [["src", "--name", "Bad_Name"], 2, "sandbox name 'Bad_Name' is invalid"],
      [["src", "--name", ""], 2, "--name must not be empty"],
    ];
    for (const [args, code, message] of cases) {
      const result = await cli(["sandbox", "fork", ...args]);
      expect({ args, code: result.code }).toEqual({ args, code });
      expect(result.stderr).toContain(message);
      expect(result.stdout).toBe("");
    }
    expect(await names()).toEqual(["src READY"]);
  });

  it("a STOPPED source: FAILED_PRECONDITION saying to start it first (gRPC and CLI)", async () => {
    await gw.grpc.stopSandbox({ name: "src" });
    await waitForPhase(gw, "src", SandboxPhase.STOPPED);
    const message = "sandbox 'src' is STOPPED; only a READY sandbox can be forked: start it first";
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "src", newName: "copy" }))).toEqual({
      code: Code.FailedPrecondition,
      message,
    });
    const result = await cli(["sandbox", "fork", "src", "--name", "copy"]);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(message);
    expect(await names()).toEqual(["src STOPPED"]);
  });
});

/** A creation policy the host supervisor loads (upstream's example, static part). */
const BASE_POLICY = `version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /proc, /dev/urandom, /app, /etc, /var/log]
  read_write: [/sandbox, /tmp, /dev/null]
landlock:
  compatibility: best_effort
process:
  run_as_user: sandbox
  run_as_group: sandbox
`;
/** BASE_POLICY plus a network rule: what the source is given after it started. */
const NEWER_POLICY = `${BASE_POLICY}network_policies:
  api:
    endpoints:
      - { host: api.example.com, port: 443 }
    binaries:
      - { path: /usr/bin/curl }
`;

const policyJson = (policy: sandboxv1.SandboxPolicy | undefined) =>
  policy ? toJson(sandboxv1.SandboxPolicySchema, policy) : undefined;

/**
 * The gateway side of a fork that goes through, with the test driver's simulated fork
 * (OPENSHELL_TEST_DRIVER_FORK=1: supports_fork, and CreateSandbox's fork_of reported back as a
 * "Forked" platform event; the copy gets a fresh supervisor of its own): what the copy inherits,
 * that it becomes READY under its own identity while the source stays READY, the CLI's output, and
 * a driver failure leaving nothing behind.
 */
describe("sandbox fork on a driver that can fork (simulated)", () => {
  let sandbox: Dirs;
  let gw: RunningGateway;
  let user: CliSandboxUser;
  const cli = (args: string[]) => user.run(["--gateway-endpoint", gw.url, ...args]);

  const createReady = async (name: string, spec: Parameters<typeof gw.grpc.createSandbox>[0]["spec"]) => {
    const id = (await gw.grpc.createSandbox({ name, spec })).sandbox!.id;
    await waitForPhase(gw, name, SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\nsupervisor log:\n${supervisorLog(sandbox.stateDir, id)}`);
    });
    return id;
  };
  const activeVersion = async (name: string) =>
    (await gw.grpc.getSandboxPolicyStatus({ name }).catch(() => undefined))?.activeVersion ?? 0;
  /** Waits for the platform event the test driver reports for a fork, and returns its message. */
  const forkedEvent = async (id: string) => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5_000);
    try {
      for await (const item of gw.grpc.watchSandbox({ id, followEvents: true }, { signal: abort.signal })) {
        if (item.payload.case === "event" && item.payload.value.reason === "Forked")
          return item.payload.value.message;
      }
    } catch {
      // aborted: no such event
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    return undefined;
  };

  beforeAll(async () => {
    const stateDir = makeStateDir();
    const workdir = makeWorkdir();
    sandbox = { stateDir, workdir, id: "" };
    gw = await startGatewayWithSupervisors({ stateDir, workdir, env: { OPENSHELL_TEST_DRIVER_FORK: "1" } });
    sandbox.gw = gw;
    sandbox.id = await createReady("src", {
      logLevel: "debug",
      environment: { FORK_TEST: "inherited" },
      policy: parsePolicyYaml(BASE_POLICY),
    });
    user = new CliSandboxUser();
  });

  afterAll(async () => {
    await user?.dispose();
    if (sandbox) await stopReadySandbox(sandbox, "SIGKILL");
  });

  it("gRPC: the copy has the source's spec, its current policy and settings, a new identity, and gets READY; the driver got fork_of", async () => {
    // The supervisor's start-up sync first, then a newer policy, loaded: the one the source has now.
    await waitFor(
      async () => (await activeVersion("src")) > 0,
      20_000,
      () => "src never loaded a policy",
    );
    const pushed = await gw.grpc.updateConfig({ name: "src", policy: parsePolicyYaml(NEWER_POLICY) });
    await waitFor(
      async () => (await activeVersion("src")) === pushed.version,
      20_000,
      () =>
        `src never loaded policy version ${pushed.version}\n${supervisorLog(sandbox.stateDir, sandbox.id)}`,
    );
    const current = (await gw.grpc.getSandboxPolicyStatus({ name: "src" })).revision?.policy;
    await gw.grpc.updateConfig({
      name: "src",
      settingKey: "ocsf_json_enabled",
      settingValue: { value: { case: "boolValue", value: true } },
    });
    const source = (await gw.grpc.getSandbox({ name: "src" })).sandbox!;

    const copy = (await gw.grpc.forkSandbox({ name: "src", newName: "copy" })).sandbox!;
    expect(copy.name).toBe("copy");
    expect(copy.id).not.toBe(source.id);
    expect(copy.spec?.logLevel).toBe("debug");
    expect(copy.spec?.environment).toEqual({ FORK_TEST: "inherited" });
    expect(copy.spec?.template?.image).toBe(source.spec?.template?.image);
    expect(policyJson(copy.spec?.policy)).toEqual(policyJson(current));
    expect(policyJson(copy.spec?.policy)).not.toEqual(policyJson(source.spec?.policy));

    await waitForPhase(gw, "copy", SandboxPhase.READY);
    expect((await gw.grpc.getSandbox({ name: "src" })).sandbox?.phase).toBe(SandboxPhase.READY);
    expect(await forkedEvent(copy.id)).toBe(`simulated fork of sandbox ${source.id}`);
    expect(supervisorPid(sandbox.stateDir, copy.id)).not.toBe(supervisorPid(sandbox.stateDir, source.id));
    const config = await gw.grpc.getSandboxConfig({ sandboxId: copy.id });
    expect(config.settings.ocsf_json_enabled?.scope).toBe(sandboxv1.SettingScope.SANDBOX);
    expect(config.settings.ocsf_json_enabled?.value?.value).toEqual({ case: "boolValue", value: true });
    const logs = await gw.grpc.getSandboxLogs({ sandboxId: copy.id, lines: 50 });
    expect(logs.logs.map((line) => line.message)).toContain(
      "sandbox copy accepted as a fork of src; asking the compute driver to copy it",
    );
  });

  it("CLI: waits for Ready and prints the new name (a generated one without --name); -o json prints the sandbox", async () => {
    const named = await cli(["-o", "json", "sandbox", "fork", "src", "--name", "copy-json"]);
    expect(named.code, named.stderr).toBe(0);
    expect(JSON.parse(named.stdout)).toMatchObject({ name: "copy-json", phase: "SANDBOX_PHASE_READY" });
    expect(named.stderr).toContain("Forked sandbox 'src' into: copy-json");

    const generated = await cli(["sandbox", "fork", "src"]);
    expect(generated.code, generated.stderr).toBe(0);
    const name = generated.stdout.trim();
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect((await gw.grpc.getSandbox({ name })).sandbox?.phase).toBe(SandboxPhase.READY);
  });

  it("a driver failure leaves no sandbox and no copied settings behind", async () => {
    const doomedId = await createReady("doomed", {
      environment: { TEST_DRIVER_FAIL_FORK: "disk copy failed" },
    });
    await gw.grpc.updateConfig({
      name: "doomed",
      settingKey: "ocsf_json_enabled",
      settingValue: { value: { case: "boolValue", value: true } },
    });
    const settingsRows = () => {
      const db = new Database(join(sandbox.stateDir, "gateway.db"), { readonly: true });
      try {
        return (
          db.prepare("SELECT id FROM objects WHERE object_type = 'sandbox_settings' ORDER BY id").all() as {
            id: string;
          }[]
        ).map((row) => row.id);
      } finally {
        db.close();
      }
    };
    const before = {
      sandboxes: (await gw.grpc.listSandboxes({})).sandboxes.length,
      settings: settingsRows(),
    };
    expect(before.settings).toContain(`settings:${doomedId}`);
    expect(await rpcFailure(gw.grpc.forkSandbox({ name: "doomed", newName: "never" }))).toEqual({
      code: Code.Internal,
      message: "fork sandbox failed: disk copy failed",
    });
    expect({
      sandboxes: (await gw.grpc.listSandboxes({})).sandboxes.length,
      settings: settingsRows(),
    }).toEqual(before);
    expect(await rpcFailure(gw.grpc.getSandbox({ name: "never" }))).toMatchObject({ code: Code.NotFound });
  });
});
