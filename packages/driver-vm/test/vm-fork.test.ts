import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type PlatformEvent, SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput, waitForPhase } from "@openshell/testing/sandbox-harness";
import { afterAll, describe, expect, it } from "vitest";

const READY_TIMEOUT_MS = 180_000;

/** A counter loop detached from the exec that starts it (as in vm-snapshot.test.ts). */
const START_LOOP =
  "setsid sh -c 'echo $$ > /sandbox/loop.pid; i=0; while :; do i=$((i+1)); echo $i > /sandbox/counter; sleep 0.2; done' </dev/null >/dev/null 2>&1 & sleep 1; cat /sandbox/loop.pid";

/**
 * ForkSandbox on the VM driver through a real gateway, driver and QEMU (TCG): the fork has the
 * source's files, its own disk from then on, new keys and new processes (the copied ones are
 * ended before its network comes up); the source runs on with its processes and session.
 */
describe("VM sandbox fork through the gateway", () => {
  let gw: RunningGateway | undefined;
  const stateDir = makeStateDir();

  afterAll(async () => {
    await gw?.stop("SIGTERM");
    for (const pid of pidsOf(/^qemu-system/, stateDir)) process.kill(pid, "SIGKILL");
    removeStateDir(stateDir);
  });

  const sh = async (sandboxId: string, script: string) => {
    const result = await execOutput(
      (gw as RunningGateway).grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }),
    );
    expect(result, script).toMatchObject({ exitCode: 0 });
    return result.stdout.trim();
  };

  it("the fork starts from the source's disk with a new identity and new processes; both run on independently", async (context) => {
    gw = await startVmGateway({ stateDir });
    const grpc = gw.grpc;
    context.onTestFailed(() => {
      process.stderr.write(`gateway log:\n${gw?.output().slice(-8000)}\n`);
    });
    const originId = (await grpc.createSandbox({ name: "origin", spec: {} })).sandbox?.id as string;
    await waitForPhase(gw, "origin", SandboxPhase.READY, READY_TIMEOUT_MS);
    const loopPid = await sh(originId, START_LOOP);
    expect(loopPid).toMatch(/^\d+$/);
    await sh(originId, "echo before > /sandbox/before.txt");
    const originCa = await sh(originId, "cat /etc/openshell-tls/openshell-ca.pem");

    const forked = await grpc.forkSandbox({ name: "origin", newName: "copy" });
    const copyId = forked.sandbox?.id as string;
    expect(copyId).not.toBe(originId);
    await waitForPhase(gw, "copy", SandboxPhase.READY, READY_TIMEOUT_MS);

    // The source ran on: READY, its loop alive and counting, exec works.
    expect((await grpc.getSandbox({ name: "origin" })).sandbox?.phase).toBe(SandboxPhase.READY);
    const counter = Number(await sh(originId, "cat /sandbox/counter"));
    await waitFor(
      async () => Number(await sh(originId, "cat /sandbox/counter")) > counter + 2,
      30_000,
      () => "the source's loop stopped counting",
    );
    expect(await sh(originId, `cat /proc/${loopPid}/cmdline | tr '\\0' ' '`)).toContain("while :");

    // The fork: the source's files, none of its processes, its own keys.
    expect(await sh(copyId, "cat /sandbox/before.txt")).toBe("before");
    expect(
      await sh(copyId, `grep -q 'while :' /proc/${loopPid}/cmdline 2>/dev/null && echo alive || echo gone`),
    ).toBe("gone");
    const frozen = await sh(copyId, "cat /sandbox/counter");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await sh(copyId, "cat /sandbox/counter")).toBe(frozen);
    expect(await sh(copyId, "cat /etc/openshell-tls/openshell-ca.pem")).not.toBe(originCa);
    const random = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'";
    expect(await sh(copyId, random)).not.toBe(await sh(originId, random));
    // Its clock was set after the copy.
    expect(Math.abs(Number(await sh(copyId, "date +%s")) - Date.now() / 1000)).toBeLessThan(5);

    // Disks are independent from now on.
    await sh(copyId, "echo fork > /sandbox/only-fork.txt");
    await sh(originId, "echo origin > /sandbox/only-origin.txt");
    expect(await sh(originId, "test -e /sandbox/only-fork.txt && echo there || echo absent")).toBe("absent");
    expect(await sh(copyId, "test -e /sandbox/only-origin.txt && echo there || echo absent")).toBe("absent");

    // What the driver said, and what the guests logged.
    const events: PlatformEvent[] = [];
    const abort = new AbortController();
    const following = (async () => {
      const stream = grpc.watchSandbox(
        { id: copyId, followEvents: true, eventTail: 100 },
        { signal: abort.signal },
      );
      for await (const event of stream) if (event.payload.case === "event") events.push(event.payload.value);
    })().catch(() => undefined);
    await waitFor(
      () => events.some((e) => e.reason === "Forked"),
      10_000,
      () => `no Forked event: ${events.map((e) => e.reason).join(", ")}`,
    );
    abort.abort();
    await following;
    expect(events.find((e) => e.reason === "Forked")?.message).toContain("copied from sandbox origin");
    const copyDir = join(stateDir, "drv", "sandboxes", copyId);
    const copyConsole = readFileSync(join(copyDir, "console.log"), "utf8");
    expect(copyConsole).toContain("OPENSHELL-VM-INIT reidentified");
    expect(existsSync(join(copyDir, "memory.snap"))).toBe(false); // consumed by its restore
    expect(pidsOf(/^qemu-system/, stateDir)).toHaveLength(2);
    // No copied supervisor ever took the source's session (its link was down until they were gone).
    expect(gw.output()).not.toMatch(/"superseded":"/);

    // Deleting the fork leaves the source alone.
    await grpc.deleteSandbox({ name: "copy" });
    await waitFor(
      () => !existsSync(copyDir),
      60_000,
      () => "the fork's directory is still there",
    );
    expect(await sh(originId, "cat /sandbox/before.txt")).toBe("before");
  }, 900_000);
});
