import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { restrictiveDefaultPolicy } from "@openshell/policy";
import { PolicyStatus, SandboxPhase, sandboxv1 } from "@openshell/proto";
import { makeStateDir, type RunningGateway, removeStateDir } from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import {
  makeWorkdir,
  RUN_AS_USER,
  startGatewayWithSupervisors,
  supervisorLog,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** The image's policy file the supervisors discover (their discovery root is a temp dir). */
const IMAGE_POLICY = `version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /etc]
  read_write: [/sandbox, /tmp]
landlock:
  compatibility: best_effort
process:
  run_as_user: sandbox
  run_as_group: sandbox
network_policies:
  image_api:
    name: image-api
    endpoints:
      - { host: image.example.com, port: 443 }
    binaries:
      - { path: /usr/bin/curl }
`;

/** The discovered policy plus one more rule: filesystem, landlock and process unchanged (static). */
function withRule(base: sandboxv1.SandboxPolicy, key: string, endpoint: sandboxv1.NetworkEndpoint) {
  const policy = create(sandboxv1.SandboxPolicySchema, base);
  policy.networkPolicies[key] = create(sandboxv1.NetworkPolicyRuleSchema, {
    name: key,
    endpoints: [endpoint],
    binaries: [{ path: "/usr/bin/curl" }],
  });
  return policy;
}
const endpoint = (init: { host: string; protocol?: string; access?: string }) =>
  create(sandboxv1.NetworkEndpointSchema, { port: 443, ports: [443], ...init });

describe("policy sync between the real gateway and a real supervisor", () => {
  let gw: RunningGateway;
  let stateDir: string;
  let workdir: string;
  let imageRoot: string;
  let sandboxId: string;
  const NAME = "policy-box";

  const status = (version = 0) => gw.grpc.getSandboxPolicyStatus({ name: NAME, version });
  const startGateway = (port?: number) =>
    startGatewayWithSupervisors({
      stateDir,
      workdir,
      port,
      env: {
        // An hour: every change below must arrive by the push (config_changed), not the poll.
        OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS: JSON.stringify([
          "--run-as-user",
          RUN_AS_USER,
          "--workdir",
          workdir,
          "--policy-discovery-root",
          imageRoot,
          "--policy-poll-interval-secs",
          "3600",
        ]),
      },
    });
  const log = () => supervisorLog(stateDir, sandboxId);

  /** Waits until revision `version` reaches `wanted` (LOADED or FAILED) as the supervisor reports it. */
  async function waitForStatus(version: number, wanted: PolicyStatus) {
    let last = "none";
    await waitFor(
      async () => {
        const answer = await status(version).catch((error: Error) => error);
        if (answer instanceof Error) {
          last = answer.message; // no revision yet: the supervisor has not synced back
          return false;
        }
        last = `${PolicyStatus[answer.revision?.status ?? 0]} (active ${answer.activeVersion})`;
        return answer.revision?.status === wanted;
      },
      15_000,
      () =>
        `revision ${version} did not become ${PolicyStatus[wanted]} (last ${last})\nsupervisor log:\n${log()}`,
    );
    return status(version);
  }

  beforeAll(async () => {
    stateDir = makeStateDir();
    workdir = makeWorkdir();
    imageRoot = mkdtempSync(join(tmpdir(), "osimg-"));
    mkdirSync(join(imageRoot, "etc/openshell"), { recursive: true });
    writeFileSync(join(imageRoot, "etc/openshell/policy.yaml"), IMAGE_POLICY);
    gw = await startGateway();
    sandboxId = (await gw.grpc.createSandbox({ spec: {}, name: NAME })).sandbox!.id;
    await waitForPhase(gw, NAME, SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\nsupervisor log:\n${log()}`);
    });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop("SIGTERM");
    removeStateDir(stateDir);
    rmSync(workdir, { recursive: true, force: true });
    rmSync(imageRoot, { recursive: true, force: true });
  });

  it("a sandbox created without a policy gets the image's: synced back as version 1 and reported LOADED", async () => {
    const answer = await waitForStatus(1, PolicyStatus.LOADED);
    expect(answer.activeVersion).toBe(1);
    const policy = answer.revision?.policy;
    expect(Object.keys(policy?.networkPolicies ?? {})).toEqual(["image_api"]);
    expect(policy?.networkPolicies.image_api?.endpoints[0]?.host).toBe("image.example.com");
    expect(log()).toContain(
      `CONFIG:DISCOVERED [INFO] policy discovered at ${imageRoot}/etc/openshell/policy.yaml`,
    );
  });

  it("UpdateConfig from a client: pushed to the supervisor, which loads it and reports LOADED", async () => {
    const base = (await waitForStatus(1, PolicyStatus.LOADED)).revision!.policy!;
    const current = (await status()).revision!.version;
    const updated = await gw.grpc.updateConfig({
      name: NAME,
      policy: withRule(base, "added", endpoint({ host: "added.example.com" })),
    });
    expect(updated.version).toBe(current + 1);
    const answer = await waitForStatus(updated.version, PolicyStatus.LOADED);
    expect(answer.activeVersion).toBe(updated.version);
    expect((await gw.grpc.getSandbox({ name: NAME })).sandbox?.currentPolicyVersion).toBe(updated.version);
    expect(log()).toMatch(
      new RegExp(`CONFIG:LOADED \\[INFO\\] policy loaded \\[version:v${updated.version} `),
    );
  });

  it("a policy the supervisor refuses is FAILED with its error; the previous LOADED stays active", async () => {
    const active = (await status()).activeVersion;
    const base = (await status(active)).revision!.policy!;
    // The gateway stores it; the supervisor's L7 checks refuse it (protocol without rules or access).
    const refused = await gw.grpc.updateConfig({
      name: NAME,
      policy: withRule(base, "bad_l7", endpoint({ host: "l7.example.com", protocol: "rest" })),
    });
    const answer = await waitForStatus(refused.version, PolicyStatus.FAILED);
    expect(answer.revision?.loadError).toContain(
      "protocol requires rules or access to define allowed traffic",
    );
    expect(answer.activeVersion).toBe(active);
    // The store marks it superseded by the newer revision (upstream), but it is the one in force.
    expect((await status(active)).revision?.loadedAtMs).toBeGreaterThan(0n);
    expect(log()).toContain(
      `CONFIG:FAILED [MEDIUM] policy version ${refused.version} refused, keeping version ${active}`,
    );
  });

  it("a supervisor that was away (sandbox stopped) picks up the revision made meanwhile when it starts", async () => {
    const active = (await status()).activeVersion;
    const base = (await status(active)).revision!.policy!;
    await gw.grpc.stopSandbox({ name: NAME });
    await waitForPhase(gw, NAME, SandboxPhase.STOPPED);
    const meanwhile = await gw.grpc.updateConfig({
      name: NAME,
      policy: withRule(base, "while_away", endpoint({ host: "away.example.com" })),
    });
    expect((await status(meanwhile.version)).revision?.status).toBe(PolicyStatus.PENDING);
    await gw.grpc.startSandbox({ name: NAME });
    await waitForPhase(gw, NAME, SandboxPhase.READY);
    const answer = await waitForStatus(meanwhile.version, PolicyStatus.LOADED);
    expect(answer.activeVersion).toBe(meanwhile.version);
  }, 60_000);

  it("a supervisor whose gateway was killed and restarted meanwhile loads the revision made while it was away", async () => {
    const active = (await status()).activeVersion;
    const base = (await status(active)).revision!.policy!;
    const pid = supervisorPid(stateDir, sandboxId);
    // Frozen, it can neither see the gateway go nor reconnect until the revision exists.
    process.kill(pid, "SIGSTOP");
    try {
      await gw.stop("SIGKILL");
      gw = await startGateway(gw.port);
      const meanwhile = await gw.grpc.updateConfig({
        name: NAME,
        policy: withRule(base, "after_restart", endpoint({ host: "restart.example.com" })),
      });
      expect((await status(meanwhile.version)).revision?.status).toBe(PolicyStatus.PENDING);
      process.kill(pid, "SIGCONT");
      const answer = await waitForStatus(meanwhile.version, PolicyStatus.LOADED);
      expect(answer.activeVersion).toBe(meanwhile.version);
      expect(supervisorPid(stateDir, sandboxId)).toBe(pid);
    } finally {
      process.kill(pid, "SIGCONT");
    }
  }, 60_000);
});

describe("an image whose policy file is unsafe", () => {
  let gw: RunningGateway;
  let stateDir: string;
  let workdir: string;
  let imageRoot: string;
  let sandboxId: string;

  beforeAll(async () => {
    stateDir = makeStateDir();
    workdir = makeWorkdir();
    imageRoot = mkdtempSync(join(tmpdir(), "osimg-"));
    mkdirSync(join(imageRoot, "etc/openshell"), { recursive: true });
    writeFileSync(
      join(imageRoot, "etc/openshell/policy.yaml"),
      IMAGE_POLICY.replace("run_as_user: sandbox", "run_as_user: root"),
    );
    gw = await startGatewayWithSupervisors({
      stateDir,
      workdir,
      env: {
        OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS: JSON.stringify([
          "--run-as-user",
          RUN_AS_USER,
          "--workdir",
          workdir,
          "--policy-discovery-root",
          imageRoot,
        ]),
      },
    });
    sandboxId = (await gw.grpc.createSandbox({ spec: {}, name: "unsafe-image" })).sandbox!.id;
  }, 60_000);

  afterAll(async () => {
    await gw?.stop("SIGTERM");
    removeStateDir(stateDir);
    rmSync(workdir, { recursive: true, force: true });
    rmSync(imageRoot, { recursive: true, force: true });
  });

  it("gets the restrictive default instead, stored as version 1, and a FINDING unsafe-disk-policy", async () => {
    let loaded: sandboxv1.SandboxPolicy | undefined;
    await waitFor(
      async () => {
        const answer = await gw.grpc
          .getSandboxPolicyStatus({ name: "unsafe-image", version: 1 })
          .catch(() => undefined);
        if (answer?.revision?.status !== PolicyStatus.LOADED) return false;
        loaded = answer.revision.policy;
        return true;
      },
      20_000,
      () => `version 1 was not LOADED\nsupervisor log:\n${supervisorLog(stateDir, sandboxId)}`,
    );
    expect(loaded).toEqual(restrictiveDefaultPolicy());
    const finding = supervisorLog(stateDir, sandboxId)
      .split("\n")
      .find((line) => line.includes("FINDING:BLOCKED [HIGH] BLOCKED unsafe-disk-policy"));
    expect(finding).toContain(
      `${imageRoot}/etc/openshell/policy.yaml refused, using the restrictive default`,
    );
    expect(finding).toContain("process.run_as_user (line 9): run_as_user must be 'sandbox', got 'root'");
  });
});
