import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PlatformEvent, SandboxPhase } from "@openshell/proto";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import {
  importDebianSandboxImage,
  stageSupervisorBin,
} from "@openshell/testing/fake-kubernetes/sandbox-images";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { freePort, waitFor } from "@openshell/testing/process";
import { execOutput, waitForPhase } from "@openshell/testing/sandbox-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The real gateway with `--drivers docker` against a PRIVATE dockerd (its own run dir, data root
 * and address pool, never the system daemon's), the real supervisor mounted into a Debian image
 * that holds nothing of ours, dialling the gateway on 127.0.0.1 through the driver's forwarder.
 */
const DRIVER_DIR = join(import.meta.dirname, "..", "dist");
const READY_TIMEOUT_MS = 120_000;
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("docker-driver.test.ts skipped: a private dockerd needs root");

describe.skipIf(!isRoot)("openshell-gateway --drivers docker (private dockerd)", () => {
  let daemon: DockerDaemon | undefined;
  let image = "";
  const work = mkdtempSync(join(tmpdir(), "osdd-"));
  const supervisorBin = join(work, "bin");
  const gateways: RunningGateway[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    daemon = await startDockerDaemon({
      runDir: "/run/openshell-dd-docker",
      dataRoot: "/var/lib/openshell-dd-docker",
      addressPool: "base=10.215.0.0/16,size=24",
    });
    image = await importDebianSandboxImage(daemon);
    stageSupervisorBin(supervisorBin);
  }, 600_000);

  afterAll(async () => {
    for (const gw of gateways.splice(0)) await gw.stop("SIGKILL");
    if (daemon) {
      const ours = await daemon.docker(["ps", "-aq", "--filter", "label=openshell.ai/managed-by=openshell"]);
      const ids = ours.stdout.split("\n").filter(Boolean);
      if (ids.length > 0) await daemon.docker(["rm", "-f", ...ids], { allowFailure: true });
      const volumes = await daemon.docker([
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=openshell.ai/managed-by=openshell",
      ]);
      const names = volumes.stdout.split("\n").filter(Boolean);
      if (names.length > 0) await daemon.docker(["volume", "rm", "-f", ...names], { allowFailure: true });
      await daemon.stop();
    }
    for (const dir of dirs.splice(0)) removeStateDir(dir);
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  async function dockerGateway(stateDir: string, port: number): Promise<RunningGateway> {
    const gw = await startGateway({
      stateDir,
      port,
      driver: { name: "docker", dir: DRIVER_DIR },
      extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--sandbox-image", image],
      env: {
        DOCKER_HOST: daemon?.host ?? "",
        OPENSHELL_SUPERVISOR_BIN_DIR: supervisorBin,
        OPENSHELL_DOCKER_NETWORK: "openshell-dd-test",
      },
      startTimeoutMs: 60_000,
    });
    gateways.push(gw);
    return gw;
  }

  const exec = async (gw: RunningGateway, sandboxId: string, script: string) =>
    execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }));

  it("create → READY → exec; stop/start keeps /sandbox; a restarted gateway adopts the container; delete leaves nothing", async () => {
    const docker = daemon as DockerDaemon;
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const port = await freePort();
    let gw = await dockerGateway(stateDir, port);
    try {
      const created = await gw.grpc.createSandbox({ name: "dd-one", spec: {} });
      const id = created.sandbox?.id as string;
      await waitForPhase(gw, "dd-one", SandboxPhase.READY, READY_TIMEOUT_MS);

      const first = await exec(gw, id, 'echo "ok from $(id -un)" && echo kept > /sandbox/kept.txt');
      expect(first).toMatchObject({ stdout: "ok from sandbox\n", exitCode: 0 });

      // What Docker holds: labels, no published port, the workspace volume, the capabilities.
      const inspect = JSON.parse((await docker.docker(["inspect", "openshell-dd-one"])).stdout)[0] as {
        Config: { Labels: Record<string, string> };
        HostConfig: { CapAdd: string[]; Privileged: boolean; PortBindings: unknown };
        Mounts: { Type: string; Name?: string; Destination: string; RW: boolean }[];
      };
      expect(inspect.Config.Labels["openshell.ai/sandbox-id"]).toBe(id);
      expect(inspect.HostConfig.Privileged).toBe(false);
      expect(inspect.HostConfig.PortBindings ?? {}).toEqual({});
      expect(inspect.Mounts).toContainEqual(
        expect.objectContaining({
          Type: "volume",
          Name: `openshell-workspace-${id}`,
          Destination: "/sandbox",
        }),
      );
      expect(inspect.Mounts).toContainEqual(
        expect.objectContaining({ Type: "bind", Destination: "/opt/openshell/bin", RW: false }),
      );

      await gw.grpc.stopSandbox({ name: "dd-one" });
      await waitForPhase(gw, "dd-one", SandboxPhase.STOPPED, 60_000);
      const state = await docker.docker(["inspect", "-f", "{{.State.Status}}", "openshell-dd-one"]);
      expect(state.stdout.trim()).toBe("exited");
      await gw.grpc.startSandbox({ name: "dd-one" });
      await waitForPhase(gw, "dd-one", SandboxPhase.READY, READY_TIMEOUT_MS);
      expect((await exec(gw, id, "cat /sandbox/kept.txt")).stdout).toBe("kept\n");

      // The gateway dies (its driver follows); the container keeps running and is adopted.
      const containerBefore = (
        await docker.docker(["inspect", "-f", "{{.Id}}", "openshell-dd-one"])
      ).stdout.trim();
      await gw.stop("SIGKILL");
      gateways.splice(gateways.indexOf(gw), 1);
      expect(
        (await docker.docker(["inspect", "-f", "{{.State.Running}}", "openshell-dd-one"])).stdout.trim(),
      ).toBe("true");
      gw = await dockerGateway(stateDir, port);
      await waitForPhase(gw, "dd-one", SandboxPhase.READY, READY_TIMEOUT_MS);
      expect((await exec(gw, id, "cat /sandbox/kept.txt")).stdout).toBe("kept\n");
      expect((await docker.docker(["inspect", "-f", "{{.Id}}", "openshell-dd-one"])).stdout.trim()).toBe(
        containerBefore,
      );

      await gw.grpc.deleteSandbox({ name: "dd-one" });
      await waitFor(
        async () => (await gw.grpc.listSandboxes({})).sandboxes.length === 0,
        60_000,
        () => "the sandbox was not deleted",
      );
      expect(
        (await docker.docker(["ps", "-aq", "--filter", `label=openshell.ai/sandbox-id=${id}`])).stdout,
      ).toBe("");
      expect(
        (await docker.docker(["volume", "ls", "-q", "--filter", `name=openshell-workspace-${id}`])).stdout,
      ).toBe("");
    } catch (error) {
      process.stderr.write(`gateway log:\n${gw.output().slice(-8000)}\n`);
      throw error;
    }
  }, 600_000);
  it("faults: a missing image is ERROR with the reason and leaves nothing; a container killed from outside is reported and Start brings it back; a dockerd restart brings sandboxes back READY with their workspace", async () => {
    const docker = daemon as DockerDaemon;
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const port = await freePort();
    const gw = await dockerGateway(stateDir, port);
    try {
      const missing = await gw.grpc.createSandbox({
        name: "dd-missing",
        spec: { template: { image: "openshell-test/absent:1" } },
      });
      const missingId = missing.sandbox?.id as string;
      await waitForPhase(gw, "dd-missing", SandboxPhase.ERROR, 60_000);
      const ready = (await gw.grpc.getSandbox({ name: "dd-missing" })).sandbox?.status?.conditions.find(
        (c) => c.type === "Ready",
      );
      expect(ready?.reason).toBe("CreateFailed");
      expect(ready?.message).toContain("openshell-test/absent");
      expect(
        (await docker.docker(["ps", "-aq", "--filter", `label=openshell.ai/sandbox-id=${missingId}`])).stdout,
      ).toBe("");
      expect(
        (await docker.docker(["volume", "ls", "-q", "--filter", `name=openshell-workspace-${missingId}`]))
          .stdout,
      ).toBe("");
      await gw.grpc.deleteSandbox({ name: "dd-missing" });

      const created = await gw.grpc.createSandbox({ name: "dd-two", spec: {} });
      const id = created.sandbox?.id as string;
      await waitForPhase(gw, "dd-two", SandboxPhase.READY, READY_TIMEOUT_MS);
      expect((await exec(gw, id, "echo kept > /sandbox/kept.txt")).exitCode).toBe(0);

      const events: PlatformEvent[] = [];
      const abort = new AbortController();
      const watching = (async () => {
        const stream = gw.grpc.watchSandbox(
          { id, followEvents: true, eventTail: 0 },
          { signal: abort.signal },
        );
        for await (const event of stream)
          if (event.payload.case === "event") events.push(event.payload.value);
      })().catch(() => undefined);
      try {
        await docker.docker(["kill", "openshell-dd-two"]);
        await waitForPhase(gw, "dd-two", SandboxPhase.ERROR, 60_000);
        await waitFor(
          () => events.some((e) => e.reason === "ContainerExited"),
          30_000,
          () => `no ContainerExited event; events: ${events.map((e) => e.reason).join(", ")}`,
        );
      } finally {
        abort.abort();
        await watching;
      }
      const exitEvent = events.find((e) => e.reason === "ContainerExited");
      expect(exitEvent?.type).toBe("Warning");
      expect(exitEvent?.message).toContain("the container exited with code 137");
      const exited = (await gw.grpc.getSandbox({ name: "dd-two" })).sandbox?.status?.conditions.find(
        (c) => c.type === "Ready",
      );
      expect(exited?.reason).toBe("ContainerExited");
      await gw.grpc.startSandbox({ name: "dd-two" });
      await waitForPhase(gw, "dd-two", SandboxPhase.READY, READY_TIMEOUT_MS);
      expect((await exec(gw, id, "cat /sandbox/kept.txt")).stdout).toBe("kept\n");

      await docker.restart();
      await waitFor(
        async () =>
          (await exec(gw, id, "cat /sandbox/kept.txt").catch(() => ({ stdout: "" }))).stdout === "kept\n",
        READY_TIMEOUT_MS,
        () => "the sandbox does not answer exec with its /sandbox file after the dockerd restart",
      );
      await waitForPhase(gw, "dd-two", SandboxPhase.READY, 30_000);
      await gw.grpc.deleteSandbox({ name: "dd-two" });
    } catch (error) {
      process.stderr.write(`gateway log:\n${gw.output().slice(-8000)}\n`);
      throw error;
    }
  }, 600_000);
});
