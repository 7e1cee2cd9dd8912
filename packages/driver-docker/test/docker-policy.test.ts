import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { type PlatformEvent, type SandboxCondition, SandboxPhase } from "@openshell/proto";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { stageSupervisorBin } from "@openshell/testing/fake-kubernetes/sandbox-images";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import {
  CONFINED,
  CONFINEMENT_PROBE,
  checkProxiedSandbox,
  type PolicyHostServers,
  proxiedPolicy,
  startPolicyHostServers,
} from "@openshell/testing/policy-scenario";
import { freePort } from "@openshell/testing/process";
import { execOutput, run, sshOptions, waitForPhase } from "@openshell/testing/sandbox-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Policy enforcement in a Docker sandbox: the VM driver's scenario (packages/testing's
 * policy-scenario) against the real gateway with `--drivers docker`, the real supervisor mounted
 * into the default image (the VM runtime's root filesystem: curl, git, python3), on a PRIVATE
 * dockerd of its own (run dir, data root, address pool: no other test shares it). The host's test
 * servers listen on the driver's bridge network's gateway address, which the container reaches as
 * itself and as host.openshell.internal; one sandbox serves every check.
 */
const DRIVER_DIR = join(import.meta.dirname, "..", "dist");
const NETWORK = "openshell-pol-test";
const READY_TIMEOUT_MS = 180_000;
const isRoot = process.getuid?.() === 0;
/** gVisor's runtime (Debian: apt-get install runsc), registered with the private daemon when present. */
const RUNSC = ["/usr/bin/runsc", "/usr/local/bin/runsc"].find((path) => existsSync(path));
if (!isRoot) console.warn("docker-policy.test.ts skipped: a private dockerd needs root");
else if (!RUNSC)
  console.warn(
    "docker-policy.test.ts: the gVisor test is skipped: runsc is not installed (apt-get install runsc)",
  );

/** The staged VM runtime (OPENSHELL_VM_RUNTIME_DIR, or the CLI's default), whose rootfs.tar is the default image. */
function vmRuntimeDir(): string {
  const root =
    process.env.OPENSHELL_VM_RUNTIME_DIR ??
    join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "openshell", "vm-runtime");
  const current = join(root, "current");
  if (!existsSync(join(current, "rootfs.tar")))
    throw new Error(`no staged VM runtime with rootfs.tar at ${current}: run bash scripts/setup.sh`);
  return realpathSync(current);
}

describe.skipIf(!isRoot)("policy enforcement in a Docker sandbox (private dockerd)", () => {
  let daemon: DockerDaemon | undefined;
  let gw: RunningGateway | undefined;
  let servers: PolicyHostServers | undefined;
  let hostAddress = "";
  const work = mkdtempSync(join(tmpdir(), "ospol-"));
  const stateDir = makeStateDir();
  let runtime = "";
  const dirs = [stateDir];
  const gateways: RunningGateway[] = [];

  async function dockerGateway(dir: string, env: Record<string, string> = {}): Promise<RunningGateway> {
    const port = await freePort();
    const started = await startGateway({
      stateDir: dir,
      port,
      driver: { name: "docker", dir: DRIVER_DIR },
      extraArgs: [
        "--grpc-endpoint",
        `http://127.0.0.1:${port}`,
        "--sandbox-image",
        `openshell/sandbox:${basename(runtime)}`,
      ],
      env: {
        DOCKER_HOST: daemon?.host ?? "",
        OPENSHELL_SUPERVISOR_BIN_DIR: join(work, "bin"),
        OPENSHELL_SANDBOX_IMAGE_ARCHIVE: join(runtime, "rootfs.tar"),
        OPENSHELL_DOCKER_NETWORK: NETWORK,
        ...env,
      },
      startTimeoutMs: 60_000,
    });
    gateways.push(started);
    return started;
  }

  beforeAll(async () => {
    runtime = vmRuntimeDir();
    daemon = await startDockerDaemon({
      runDir: "/run/openshell-pol-docker",
      dataRoot: "/var/lib/openshell-pol-docker",
      addressPool: "base=10.217.0.0/16,size=24",
      ...(RUNSC
        ? {
            runtimes: {
              runsc: { path: RUNSC },
              "runsc-hostnet": { path: RUNSC, runtimeArgs: ["--network=host"] },
            },
          }
        : {}),
    });
    stageSupervisorBin(join(work, "bin"));
    gw = await dockerGateway(stateDir);
    // The driver made its network at start; the host's address on it is where containers reach us.
    hostAddress = (
      await daemon.docker(["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", NETWORK])
    ).stdout.trim();
    servers = await startPolicyHostServers(hostAddress, join(work, "servers"));
  }, 600_000);

  afterAll(async () => {
    servers?.close();
    for (const started of gateways.splice(0)) await started.stop("SIGKILL");
    if (daemon) {
      await daemon.removeMatching("label=openshell.ai/managed-by=openshell");
      await daemon.stop();
    }
    for (const dir of dirs.splice(0)) removeStateDir(dir);
    rmSync(work, { recursive: true, force: true });
  }, 180_000);

  it("the container's network goes only through the policy proxy; exec and ssh children are confined (Landlock, seccomp, no capabilities)", async () => {
    const gateway = gw as RunningGateway;
    const hostServers = servers as PolicyHostServers;
    try {
      const policy = proxiedPolicy(hostAddress, hostServers.ports);
      const created = await gateway.grpc.createSandbox({ name: "proxied", spec: { policy } });
      const id = created.sandbox?.id as string;
      await waitForPhase(gateway, "proxied", SandboxPhase.READY, READY_TIMEOUT_MS);

      // The host kernel's Landlock reaches the container (Docker's seccomp profile lets the
      // supervisor's launcher use it): EACCES on world-writable /dev/shm and /var/tmp.
      const execConfined = await execOutput(
        gateway.grpc.execSandbox({ sandboxId: id, command: ["bash", "-c", CONFINEMENT_PROBE] }),
      );
      expect(execConfined.stdout.trim().split("\n"), execConfined.stderr).toEqual([...CONFINED]);
      const token = (await gateway.grpc.createSshSession({ sandboxId: id })).token;
      const sshConfined = await run(
        "ssh",
        [...sshOptions(gateway, id, token), "-tt", "sandbox", CONFINEMENT_PROBE],
        { timeoutMs: 60_000 },
      );
      expect(sshConfined.stdout.toString().replace(/\r\n/g, "\n").trim().split("\n")).toEqual([...CONFINED]);

      await checkProxiedSandbox(gateway, { id, name: "proxied" }, hostAddress, hostServers);
    } catch (error) {
      process.stderr.write(`gateway log:\n${gateway.output().slice(-8000)}\n`);
      throw error;
    }
  }, 600_000);

  // gVisor: the supervisor needs a network namespace with a veth pair and nftables rules, which
  // Debian 12's runsc (20221219) cannot give it; the sandbox must fail closed, saying why.
  it.skipIf(!RUNSC)(
    "gVisor (--runtime runsc): doctor names it; the sandbox is ERROR with the reason, never READY without its confinement",
    async () => {
      const docker = daemon as DockerDaemon;
      const doctor = spawnSync(
        process.execPath,
        [join(DRIVER_DIR, "openshell-driver-docker.js"), "doctor", "--runtime", "runsc"],
        {
          encoding: "utf8",
          env: { PATH: process.env.PATH, DOCKER_HOST: docker.host },
          timeout: 60_000,
        },
      );
      expect(doctor.stdout).toContain("ok   runtime: runsc (available: ");
      expect(doctor.stdout).toContain("warn runtime: runsc is gVisor");

      // runsc as installed (its own network stack): on this kernel it refuses any networked
      // container (its test for "not the root netns" is a sysctl that every netns has since
      // Linux 6.x), so the container never starts; elsewhere the supervisor fails closed as below.
      const plainDir = makeStateDir();
      dirs.push(plainDir);
      const plain = await dockerGateway(plainDir, { OPENSHELL_DOCKER_RUNTIME: "runsc" });
      const plainId = (await plain.grpc.createSandbox({ name: "gvisor", spec: {} })).sandbox?.id as string;
      await waitForPhase(plain, "gvisor", SandboxPhase.ERROR, READY_TIMEOUT_MS);
      const refused = readyCondition(await plain.grpc.getSandbox({ name: "gvisor" }));
      expect(["CreateFailed", "SupervisorFailedClosed"], refused?.message).toContain(refused?.reason);
      if (refused?.reason === "CreateFailed") {
        expect(refused.message).toContain("starting the container failed: OCI runtime");
        // Nothing is left behind: no container, no workspace volume.
        expect(
          (await docker.docker(["ps", "-aq", "--filter", `label=openshell.ai/sandbox-id=${plainId}`])).stdout,
        ).toBe("");
        expect(
          (await docker.docker(["volume", "ls", "-q", "--filter", `name=openshell-workspace-${plainId}`]))
            .stdout,
        ).toBe("");
      }
      await plain.grpc.deleteSandbox({ name: "gvisor" });

      // runsc with the container's network namespace passed through (--network=host inside the
      // container's own netns): the container runs, the supervisor cannot build the sandbox's
      // namespace and exits 78; the driver stops Docker's restarts and says why.
      const hostnetDir = makeStateDir();
      dirs.push(hostnetDir);
      const hostnet = await dockerGateway(hostnetDir, { OPENSHELL_DOCKER_RUNTIME: "runsc-hostnet" });
      const created = await hostnet.grpc.createSandbox({ name: "gvisor-hostnet", spec: {} });
      const id = created.sandbox?.id as string;
      await waitForPhase(hostnet, "gvisor-hostnet", SandboxPhase.ERROR, READY_TIMEOUT_MS);
      const failed = readyCondition(await hostnet.grpc.getSandbox({ name: "gvisor-hostnet" }));
      expect(failed?.reason, failed?.message).toBe("SupervisorFailedClosed");
      const exited = await platformEvent(hostnet, id, "ContainerExited");
      expect(exited.message).toContain(
        "the supervisor failed closed: network namespace creation failed and proxy mode requires isolation",
      );
      const state = await docker.docker([
        "inspect",
        "-f",
        "{{.HostConfig.Runtime}} {{.State.Running}} {{.HostConfig.RestartPolicy.Name}}",
        "openshell-gvisor-hostnet",
      ]);
      expect(state.stdout.trim()).toBe("runsc-hostnet false no");
      await hostnet.grpc.deleteSandbox({ name: "gvisor-hostnet" });
    },
    300_000,
  );
});

function readyCondition(response: { sandbox?: { status?: { conditions: SandboxCondition[] } } }) {
  return response.sandbox?.status?.conditions.find((c) => c.type === "Ready");
}

/** The first platform event of the sandbox with `reason` (from the gateway's history, then live). */
async function platformEvent(gw: RunningGateway, id: string, reason: string): Promise<PlatformEvent> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 60_000);
  try {
    const stream = gw.grpc.watchSandbox({ id, followEvents: true, eventTail: 100 }, { signal: abort.signal });
    for await (const event of stream)
      if (event.payload.case === "event" && event.payload.value.reason === reason) return event.payload.value;
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  throw new Error(`no ${reason} event for sandbox ${id}`);
}
