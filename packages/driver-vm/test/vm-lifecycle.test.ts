import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type PlatformEvent, SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import {
  checkProxiedSandbox,
  proxiedPolicy,
  startPolicyHostServers,
} from "@openshell/testing/policy-scenario";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput, waitForPhase } from "@openshell/testing/sandbox-harness";
import { afterEach, describe, expect, it } from "vitest";

const READY_TIMEOUT_MS = 180_000;
const MiB = 2 ** 20;
/** The host as a QEMU guest sees it (user networking's alias of the host's loopback). */
const QEMU_HOST = "10.0.2.2";

const qemuPidsUnder = (dir: string) => pidsOf(/^qemu-system/, dir);
const qemuArgv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");

/** Bytes the file really occupies on the host (a qcow2 whose clusters were discarded has holes). */
const allocatedBytes = (file: string) => statSync(file).blocks * 512;

/**
 * VM sandboxes through a real gateway (TCG, Node supervisor): what a user sees when a VM is sized,
 * fills and empties its disk, or dies under it.
 */
describe("VM sandbox lifecycle through the gateway", () => {
  const dirs: string[] = [];
  const gateways: RunningGateway[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === "fail")
      for (const gw of gateways) process.stderr.write(`gateway log:\n${gw.output().slice(-6000)}\n`);
    for (const gw of gateways.splice(0)) await gw.stop("SIGTERM");
    for (const dir of dirs.splice(0)) {
      for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
      removeStateDir(dir);
    }
  });

  async function vmGateway(): Promise<RunningGateway> {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir });
    gateways.push(gw);
    return gw;
  }

  const exec = async (gw: RunningGateway, sandboxId: string, script: string) => {
    const result = await execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }));
    expect(result, script).toMatchObject({ exitCode: 0 });
    return result.stdout;
  };

  it("honours cpu, memory and disk size; a file deleted in /sandbox gives its space back to the host", async () => {
    const gw = await vmGateway();
    const size = { cpu: "1", memory: "384Mi", "ephemeral-storage": "3Gi" };
    // The restrictive default policy plus /sys read-only: commands are confined by Landlock, and
    // the balloon check below reads /sys.
    const policy = {
      version: 1,
      filesystem: {
        includeWorkdir: true,
        readOnly: ["/usr", "/lib", "/proc", "/dev/urandom", "/etc", "/var/log", "/sys"],
        readWrite: ["/sandbox", "/tmp", "/dev/null"],
      },
      landlock: { compatibility: "best_effort" },
    };
    const created = await gw.grpc.createSandbox({
      name: "sized",
      spec: { template: { resources: { requests: size, limits: size } }, policy },
    });
    const id = created.sandbox?.id as string;
    await waitForPhase(gw, "sized", SandboxPhase.READY, READY_TIMEOUT_MS);
    const [pid] = qemuPidsUnder(gw.stateDir);
    const argv = qemuArgv(pid as number).join(" ");
    expect(argv).toContain("-m 384 -smp 1 ");
    const disk = join(gw.stateDir, "drv", "sandboxes", id, "disk.qcow2");
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "-U", "--output=json", disk], { encoding: "utf8" }),
    );
    expect(info["virtual-size"]).toBe(3 * 1024 * MiB);

    const [cpus, rootBytes] = (await exec(gw, id, "nproc; df -B1 --output=size / | tail -1"))
      .trim()
      .split(/\s+/);
    expect(cpus).toBe("1");
    // The free-page-reporting balloon is bound in the guest (its driver is a module in the initramfs).
    expect(await exec(gw, id, "ls /sys/bus/virtio/drivers/virtio_balloon")).toMatch(/virtio\d+/);
    // The guest grew its filesystem from the image's 2 GiB into the 3 GiB disk.
    expect(Number(rootBytes)).toBeGreaterThan(2.7 * 1024 * MiB);

    const before = allocatedBytes(disk);
    await exec(gw, id, "head -c 300000000 /dev/urandom > /sandbox/big && sync");
    const filled = allocatedBytes(disk);
    expect(filled - before).toBeGreaterThan(250 * MiB);
    await exec(gw, id, "rm /sandbox/big && sync");
    await waitFor(
      () => allocatedBytes(disk) < filled - 250 * MiB,
      30_000,
      () => `the overlay still holds ${allocatedBytes(disk) / MiB} MiB (${filled / MiB} MiB when full)`,
    );
  }, 300_000);

  it("a VM killed with SIGKILL comes back from its disk: READY again, /sandbox intact, the restart in its events", async () => {
    const gw = await vmGateway();
    const created = await gw.grpc.createSandbox({ name: "crashy", spec: {} });
    const id = created.sandbox?.id as string;
    await waitForPhase(gw, "crashy", SandboxPhase.READY, READY_TIMEOUT_MS);
    await exec(gw, id, "echo kept > /sandbox/kept.txt && sync");
    const [first] = qemuPidsUnder(gw.stateDir);

    const events: PlatformEvent[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      const stream = gw.grpc.watchSandbox({ id, followEvents: true, eventTail: 0 }, { signal: abort.signal });
      for await (const event of stream) if (event.payload.case === "event") events.push(event.payload.value);
    })().catch(() => undefined);

    try {
      process.kill(first as number, "SIGKILL");
      await waitFor(
        () => events.some((e) => e.reason === "Restarting"),
        30_000,
        () => `no Restarting event; events: ${events.map((e) => e.reason).join(", ")}`,
      );
      await waitFor(
        () => qemuPidsUnder(gw.stateDir).some((pid) => pid !== first),
        30_000,
        () => "the VM was not started again",
      );
      const catKept = async () =>
        (await execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["cat", "/sandbox/kept.txt"] })))
          .stdout;
      await waitFor(
        () =>
          catKept().then(
            (out) => out === "kept\n",
            () => false,
          ),
        READY_TIMEOUT_MS,
        () => "the restarted sandbox does not answer exec with its /sandbox file",
      );
      await waitForPhase(gw, "crashy", SandboxPhase.READY, 10_000);
    } finally {
      abort.abort();
      await watching;
    }
    const restart = events.find((e) => e.reason === "Restarting");
    expect(restart?.type).toBe("Warning");
    expect(restart?.message).toContain("VM exited unexpectedly (signal SIGKILL); restarting, attempt 1 of 5");
    expect(qemuPidsUnder(gw.stateDir)).toHaveLength(1);
  }, 300_000);

  it("a VM sandbox's network goes only through the policy proxy: allowed host works, others 403, direct connects fail", async () => {
    // Host services the sandbox reaches as 10.0.2.2 (QEMU's alias of the host's loopback).
    const workDir = makeStateDir();
    dirs.push(workDir);
    const servers = await startPolicyHostServers("127.0.0.1", workDir);
    try {
      const gw = await vmGateway();
      const policy = proxiedPolicy(QEMU_HOST, servers.ports);
      const created = await gw.grpc.createSandbox({ name: "proxied", spec: { policy } });
      const id = created.sandbox?.id as string;
      await waitForPhase(gw, "proxied", SandboxPhase.READY, READY_TIMEOUT_MS);
      await checkProxiedSandbox(gw, { id, name: "proxied" }, QEMU_HOST, servers);
    } finally {
      servers.close();
    }
  }, 300_000);
});
