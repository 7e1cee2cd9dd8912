import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { type PlatformEvent, SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput, waitForPhase } from "@openshell/testing/sandbox-harness";
import { afterEach, describe, expect, it } from "vitest";

const READY_TIMEOUT_MS = 180_000;

const qemuPidsUnder = (dir: string) => pidsOf(/^qemu-system/, dir);

/**
 * A counter loop in the guest, detached from the exec that starts it: it writes its PID once and
 * then its count every 0.2 s into /sandbox (so a restore shows the same process going on).
 */
const START_LOOP =
  "setsid sh -c 'echo $$ > /sandbox/loop.pid; i=0; while :; do i=$((i+1)); echo $i > /sandbox/counter; sleep 0.2; done' </dev/null >/dev/null 2>&1 & sleep 1; cat /sandbox/loop.pid";

/**
 * Memory snapshots of VM sandboxes through a real gateway, driver and QEMU (TCG): `sandbox stop`
 * saves the running VM and ends QEMU, `sandbox start` restores it with its processes; a snapshot
 * that cannot be restored falls back to booting the disk; a clean gateway stop saves every VM.
 */
describe("VM memory snapshots through the gateway", () => {
  const dirs: string[] = [];
  const gateways: RunningGateway[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === "fail") {
      for (const gw of gateways) process.stderr.write(`gateway log:\n${gw.output().slice(-8000)}\n`);
      // A VM that never said "ready" (a boot timeout, seen once in CI) shows why only here.
      for (const dir of dirs) {
        const sandboxes = join(dir, "drv", "sandboxes");
        if (!existsSync(sandboxes)) continue;
        for (const id of readdirSync(sandboxes)) {
          const consoleLog = join(sandboxes, id, "console.log");
          if (existsSync(consoleLog))
            process.stderr.write(`console of ${id}:\n${readFileSync(consoleLog, "utf8").slice(-3000)}\n`);
        }
      }
    }
    for (const gw of gateways.splice(0)) await gw.stop("SIGTERM");
    for (const dir of dirs.splice(0)) {
      for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
      removeStateDir(dir);
    }
  });

  async function vmGateway(stateDir = makeStateDir(), port?: number): Promise<RunningGateway> {
    if (!dirs.includes(stateDir)) dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, port });
    gateways.push(gw);
    return gw;
  }

  async function stopGateway(gw: RunningGateway): Promise<void> {
    gateways.splice(gateways.indexOf(gw), 1);
    await gw.stop("SIGTERM");
  }

  const sh = async (gw: RunningGateway, sandboxId: string, script: string) => {
    const result = await execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }));
    expect(result, script).toMatchObject({ exitCode: 0 });
    return result.stdout.trim();
  };

  /** Follows the sandbox's platform events into `events` until `stop()`. */
  function followEvents(gw: RunningGateway, id: string) {
    const events: PlatformEvent[] = [];
    const abort = new AbortController();
    const done = (async () => {
      const stream = gw.grpc.watchSandbox({ id, followEvents: true, eventTail: 0 }, { signal: abort.signal });
      for await (const event of stream) if (event.payload.case === "event") events.push(event.payload.value);
    })().catch(() => undefined);
    return {
      events,
      reasons: () => events.map((e) => e.reason).join(", "),
      stop: async () => {
        abort.abort();
        await done;
      },
    };
  }

  const sandboxDir = (gw: RunningGateway, id: string) => join(gw.stateDir, "drv", "sandboxes", id);

  /** The loop's pid is alive and its counter moves past `than`. */
  async function loopGoesOn(gw: RunningGateway, id: string, pid: string, than: number): Promise<void> {
    expect(await sh(gw, id, `cat /proc/${pid}/cmdline | tr '\\0' ' '`)).toContain("while :");
    await waitFor(
      async () => Number(await sh(gw, id, "cat /sandbox/counter")) > than + 2,
      30_000,
      () => "the loop's counter does not move",
    );
  }

  it("stop saves the VM's memory (0600) and ends QEMU; start resumes the same processes; a corrupt snapshot boots the disk with an event", async () => {
    const gw = await vmGateway();
    const id = (await gw.grpc.createSandbox({ name: "napper", spec: {} })).sandbox?.id as string;
    await waitForPhase(gw, "napper", SandboxPhase.READY, READY_TIMEOUT_MS);
    const loopPid = await sh(gw, id, START_LOOP);
    expect(loopPid).toMatch(/^\d+$/);
    await sh(gw, id, "echo kept > /sandbox/kept.txt");
    const dir = sandboxDir(gw, id);
    const snapshot = join(dir, "memory.snap");

    const watch = followEvents(gw, id);
    try {
      const stopped = await gw.grpc.stopSandbox({ name: "napper" });
      expect(stopped.sandbox?.phase).toBe(SandboxPhase.STOPPED);
      expect(qemuPidsUnder(gw.stateDir)).toEqual([]);
      expect(statSync(snapshot).mode & 0o777).toBe(0o600);
      expect(statSync(snapshot).size).toBeGreaterThan(10 * 2 ** 20);
      const meta = JSON.parse(readFileSync(join(dir, "snapshot.json"), "utf8"));
      expect(meta).toMatchObject({ cause: "stop", bytes: statSync(snapshot).size });
      expect(statSync(join(dir, "snapshot.json")).mode & 0o777).toBe(0o600);
      // Exec on a stopped sandbox is refused.
      expect(
        (await rpcFailure(execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["true"] })))).message,
      ).toContain("stopped");

      await gw.grpc.startSandbox({ name: "napper" });
      await waitForPhase(gw, "napper", SandboxPhase.READY, READY_TIMEOUT_MS);
      await waitFor(
        () => watch.events.some((e) => e.reason === "Restored"),
        10_000,
        () => `no Restored event; events: ${watch.reasons()}`,
      );
      expect(existsSync(snapshot)).toBe(false); // the restored guest's disk diverges from it
      const counter = Number(await sh(gw, id, "cat /sandbox/counter"));
      await loopGoesOn(gw, id, loopPid, counter);
      expect(await sh(gw, id, "cat /sandbox/kept.txt")).toBe("kept");
      // The guest's clock was set after the restore (it stood still while saved).
      const guestNow = Number(await sh(gw, id, "date +%s"));
      expect(Math.abs(guestNow - Date.now() / 1000)).toBeLessThan(5);
      expect(watch.events.some((e) => e.reason === "Suspended")).toBe(true);
      // The init got the driver's control line and told the supervisor to reconnect at once.
      const consoleText = readFileSync(join(dir, "console.log"), "utf8");
      expect(consoleText).toMatch(/OPENSHELL-VM-INIT synced \d+/);
      expect(consoleText).toContain("OPENSHELL-VM-INIT restored");
      expect(consoleText).toContain("asked to reconnect to the gateway");
      expect(watch.events.some((e) => e.reason === "SnapshotUnusable")).toBe(false);

      // A snapshot whose content changed after the save (one byte, same size) is never loaded.
      await sh(gw, id, "echo again > /sandbox/kept.txt");
      await gw.grpc.stopSandbox({ name: "napper" });
      const fd = openSync(snapshot, "r+");
      const byte = Buffer.alloc(1);
      const at = Math.floor(statSync(snapshot).size / 2);
      readSync(fd, byte, 0, 1, at);
      byte[0] = (byte[0] as number) ^ 0xff;
      writeSync(fd, byte, 0, 1, at);
      closeSync(fd);
      await gw.grpc.startSandbox({ name: "napper" });
      await waitForPhase(gw, "napper", SandboxPhase.READY, READY_TIMEOUT_MS);
      const unusable = watch.events.find((e) => e.reason === "SnapshotUnusable");
      expect(unusable?.type, watch.reasons()).toBe("Warning");
      expect(unusable?.message).toContain("SHA-256");
      expect(await sh(gw, id, "cat /sandbox/kept.txt")).toBe("again");
      expect(await sh(gw, id, `test -e /proc/${loopPid} && echo alive || echo gone`)).toBe("gone");
      expect(existsSync(snapshot)).toBe(false);
    } finally {
      await watch.stop();
    }
  }, 600_000);

  it("a truncated snapshot or one made for another runtime boots the disk with an event saying why", async () => {
    const gw = await vmGateway();
    const id = (await gw.grpc.createSandbox({ name: "changed", spec: {} })).sandbox?.id as string;
    await waitForPhase(gw, "changed", SandboxPhase.READY, READY_TIMEOUT_MS);
    await sh(gw, id, "echo kept > /sandbox/kept.txt");
    const dir = sandboxDir(gw, id);
    const watch = followEvents(gw, id);
    try {
      // Another runtime: the record names the key it was made with.
      await gw.grpc.stopSandbox({ name: "changed" });
      const metaFile = join(dir, "snapshot.json");
      const meta = JSON.parse(readFileSync(metaFile, "utf8"));
      meta.fingerprint.runtimeKey = "0000000000000000";
      writeFileSync(metaFile, JSON.stringify(meta));
      await gw.grpc.startSandbox({ name: "changed" });
      await waitForPhase(gw, "changed", SandboxPhase.READY, READY_TIMEOUT_MS);
      await waitFor(
        () => watch.events.some((e) => e.reason === "SnapshotUnusable"),
        10_000,
        () => `no SnapshotUnusable event; events: ${watch.reasons()}`,
      );
      expect(watch.events.find((e) => e.reason === "SnapshotUnusable")?.message).toContain(
        'runtimeKey "0000000000000000"',
      );
      expect(await sh(gw, id, "cat /sandbox/kept.txt")).toBe("kept");

      // Truncated, with a record that matches the cut file: QEMU refuses the stream.
      await gw.grpc.stopSandbox({ name: "changed" });
      const snapshot = join(dir, "memory.snap");
      const cut = Math.floor(statSync(snapshot).size / 3);
      truncateSync(snapshot, cut);
      const record = JSON.parse(readFileSync(metaFile, "utf8"));
      record.bytes = cut;
      writeFileSync(metaFile, JSON.stringify(record));
      const before = watch.events.length;
      await gw.grpc.startSandbox({ name: "changed" });
      await waitForPhase(gw, "changed", SandboxPhase.READY, READY_TIMEOUT_MS);
      const second = watch.events.slice(before).find((e) => e.reason === "SnapshotUnusable");
      expect(second?.message, watch.reasons()).toMatch(/QEMU|SHA-256/);
      expect(await sh(gw, id, "cat /sandbox/kept.txt")).toBe("kept");

      // A stopped sandbox's snapshot goes with it.
      await gw.grpc.stopSandbox({ name: "changed" });
      expect(existsSync(snapshot)).toBe(true);
      await gw.grpc.deleteSandbox({ name: "changed" });
      await waitFor(
        () => !existsSync(dir),
        60_000,
        () => "the sandbox directory (with its snapshot) is still there",
      );
    } finally {
      await watch.stop();
    }
  }, 600_000);

  it("a clean gateway stop saves the running VM and the next start restores it: the same process goes on", async () => {
    const gw = await vmGateway();
    const id = (await gw.grpc.createSandbox({ name: "keeper", spec: {} })).sandbox?.id as string;
    await waitForPhase(gw, "keeper", SandboxPhase.READY, READY_TIMEOUT_MS);
    const loopPid = await sh(gw, id, START_LOOP);
    await stopGateway(gw);
    expect(qemuPidsUnder(gw.stateDir)).toEqual([]);
    const dir = sandboxDir(gw, id);
    expect(JSON.parse(readFileSync(join(dir, "snapshot.json"), "utf8"))).toMatchObject({ cause: "shutdown" });
    expect(readFileSync(join(dir, "console.log"), "utf8")).not.toContain("OPENSHELL-VM-INIT poweroff");

    const again = await vmGateway(gw.stateDir, gw.port);
    await waitForPhase(again, "keeper", SandboxPhase.READY, READY_TIMEOUT_MS);
    const counter = Number(await sh(again, id, "cat /sandbox/counter"));
    await loopGoesOn(again, id, loopPid, counter);
    expect(qemuPidsUnder(again.stateDir)).toHaveLength(1);
  }, 600_000);
});
