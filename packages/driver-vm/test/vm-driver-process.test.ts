import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Code } from "@connectrpc/connect";
import { connectToDriver, type DriverConnection } from "@openshell/driver-sdk";
import type { compute } from "@openshell/proto";
import { SandboxPhase } from "@openshell/proto";
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
import { defaultRuntimeRoot } from "../src/vm-runtime.js";

const DRIVER = join(import.meta.dirname, "..", "dist", "openshell-driver-vm.js");

function runDriver(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DRIVER, ...args], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

const qemuPidsUnder = (dir: string) => pidsOf(/^qemu-system/, dir);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One newc cpio entry (the initramfs format): a file, or a character device when `rdev` is set. */
function cpioEntry(name: string, mode: number, data = Buffer.alloc(0), rdev?: [number, number]): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [
    1,
    mode,
    0,
    0,
    1,
    0,
    data.length,
    0,
    0,
    rdev?.[0] ?? 0,
    rdev?.[1] ?? 0,
    nameBytes.length,
    0,
  ];
  const header = Buffer.from(`070701${fields.map(hex).join("")}`);
  const pad = (length: number) => Buffer.alloc((4 - (length % 4)) % 4);
  return Buffer.concat([header, nameBytes, pad(header.length + nameBytes.length), data, pad(data.length)]);
}

/**
 * A copy of the staged runtime whose initramfs never lets the guest get ready: an extra cpio
 * archive appended to the real one replaces /init with a script that prints a line (with a
 * terminal escape in it, as hostile console output would) and sleeps.
 */
function hangingRuntime(dir: string): string {
  const staged = realpathSync(join(defaultRuntimeRoot(), "current"));
  const current = join(dir, "hanging-runtime", "current");
  mkdirSync(current, { recursive: true });
  for (const name of ["vmlinux", "vmlinuz", "rootfs.qcow2"])
    if (existsSync(join(staged, name))) symlinkSync(join(staged, name), join(current, name));
  const manifest = JSON.parse(readFileSync(join(staged, "manifest.json"), "utf8"));
  writeFileSync(join(current, "manifest.json"), JSON.stringify({ ...manifest, key: "0123456789abcdef" }));
  const init =
    "#!/bin/sh\necho 'hanging-init: this guest never gets ready'\nprintf 'title:\\033]0;pwned\\007:end\\n'\nexec sleep 100000\n";
  const extra = Buffer.concat([
    cpioEntry("dev", 0o040755),
    cpioEntry("dev/console", 0o020600, undefined, [5, 1]),
    cpioEntry("init", 0o100755, Buffer.from(init)),
    cpioEntry("TRAILER!!!", 0),
  ]);
  const initrd = readFileSync(join(staged, "initrd.img"));
  // The kernel takes a further archive only at a 4-byte boundary (zeros in between are skipped).
  const padding = Buffer.alloc((4 - (initrd.length % 4)) % 4);
  writeFileSync(join(current, "initrd.img"), Buffer.concat([initrd, padding, extra]));
  return dirname(current);
}

/** Watches the driver's events until `until` says stop; returns what came. */
async function collectEvents(
  client: DriverConnection["client"],
  until: (event: compute.WatchSandboxesEvent) => boolean,
  timeoutMs: number,
): Promise<compute.WatchSandboxesEvent[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const seen: compute.WatchSandboxesEvent[] = [];
  try {
    for await (const event of client.watchSandboxes({}, { signal: abort.signal })) {
      seen.push(event);
      if (until(event)) break;
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return seen;
}

describe("openshell-driver-vm process", () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const connections: DriverConnection[] = [];

  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.close();
    for (const child of children.splice(0)) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    for (const dir of dirs.splice(0)) {
      for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  function stateDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "osvm-"));
    dirs.push(dir);
    return dir;
  }

  /** Runs the driver binary on `dir` (TCG forced, small guests) and connects to its socket. */
  async function startDriver(
    dir: string,
    extraArgs: string[] = [],
    stateDir = dir,
  ): Promise<{ child: ChildProcess; client: DriverConnection["client"] }> {
    const socket = join(dir, "d.sock");
    rmSync(socket, { force: true });
    const args = [
      "--bind-socket",
      socket,
      "--state-dir",
      stateDir,
      "--openshell-endpoint",
      "http://127.0.0.1:1",
    ];
    // Templates off: these tests count the VMs under the state dir, and a template being made in
    // the background is one more (test/vm-template.test.ts covers templates).
    const child = spawn(
      process.execPath,
      [DRIVER, ...args, "--mem-mib", "512", "--templates", "off", ...extraArgs],
      {
        stdio: ["pipe", "ignore", "inherit"],
        env: { ...process.env, OPENSHELL_VM_ACCEL: "tcg" },
      },
    );
    children.push(child);
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    const connection = connectToDriver(socket);
    connections.push(connection);
    return { child, client: connection.client };
  }

  it("refuses an unspecified endpoint and a missing runtime with messages that say what to do", async () => {
    const dir = stateDir();
    const common = ["--bind-socket", join(dir, "d.sock"), "--state-dir", dir];
    const unspecified = await runDriver([...common, "--openshell-endpoint", "http://0.0.0.0:8080"]);
    expect(unspecified.code).toBe(2);
    expect(unspecified.stderr).toContain(
      "is not reachable from sandbox VMs; use a concrete host such as 127.0.0.1",
    );
    const noRuntime = await runDriver([
      ...common,
      "--openshell-endpoint",
      "http://127.0.0.1:1",
      "--runtime-dir",
      join(dir, "none"),
    ]);
    expect(noRuntime.code).toBe(2);
    expect(noRuntime.stderr).toContain(
      `bash ${join(dirname(DRIVER), "..", "runtime", "stage-vm-runtime.sh")}`,
    );
  });

  it("validates what a VM cannot honour, reports unknown deletes, and refuses a duplicate id", async () => {
    const dir = stateDir();
    const { client } = await startDriver(dir);

    expect((await client.getCapabilities({})).driverName).toBe("openshell-driver-vm");
    expect(
      await rpcFailure(
        client.validateSandboxCreate({ sandbox: { id: "x", name: "x", spec: { gpu: true } } }),
      ),
    ).toEqual({ code: Code.FailedPrecondition, message: "vm sandboxes do not support gpu" });
    expect(
      await rpcFailure(
        client.validateSandboxCreate({
          sandbox: { id: "x", name: "x", spec: { template: { image: "ubuntu" } } },
        }),
      ),
    ).toEqual({ code: Code.FailedPrecondition, message: "vm sandboxes do not support template.image" });
    expect((await client.deleteSandbox({ sandboxId: "no-such-id" })).deleted).toBe(false);

    const sandbox = { id: "11111111-2222-3333-4444-555555555555", name: "dup", spec: {} };
    await client.createSandbox({ sandbox });
    expect(qemuPidsUnder(dir)).toHaveLength(1);
    expect(await rpcFailure(client.createSandbox({ sandbox }))).toMatchObject({ code: Code.AlreadyExists });
    expect(qemuPidsUnder(dir)).toHaveLength(1);
    expect((await client.deleteSandbox({ sandboxId: sandbox.id })).deleted).toBe(true);
    for (let i = 0; i < 200 && qemuPidsUnder(dir).length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(qemuPidsUnder(dir)).toEqual([]);
  }, 60_000);

  it("a sandbox whose disk vanished while the driver was down ends in a clear DiskMissing state", async () => {
    const dir = stateDir();
    const first = await startDriver(dir);
    const id = "33333333-4444-5555-6666-777777777777";
    await first.client.createSandbox({ sandbox: { id, name: "lost-disk", spec: {} } });
    // The driver dies without a clean stop (as after a crash); its VM keeps running until we kill it.
    const gone = new Promise((resolve) => first.child.once("exit", resolve));
    first.child.kill("SIGKILL");
    await gone;
    children.splice(children.indexOf(first.child), 1);
    for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
    for (let i = 0; i < 50 && qemuPidsUnder(dir).length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    rmSync(join(dir, "sandboxes", id, "disk.qcow2"));

    const again = await startDriver(dir);
    const condition = (await again.client.getSandbox({ sandboxId: id })).sandbox?.status?.conditions[0];
    expect(condition).toMatchObject({ type: "Ready", status: "False", reason: "DiskMissing" });
    expect(condition?.message).toContain("delete and recreate the sandbox");
    expect(qemuPidsUnder(dir)).toEqual([]);
    expect((await again.client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
  }, 60_000);

  it("a supervisor that cannot reach the gateway's endpoint becomes a GatewayUnreachable platform event", async () => {
    const dir = stateDir();
    const { client } = await startDriver(dir);
    const id = "44444444-5555-6666-7777-888888888888";
    const abort = new AbortController();
    const events = client.watchSandboxes({}, { signal: abort.signal });
    // A token, so the supervisor starts and tries; nothing listens on the endpoint's port 1.
    await client.createSandbox({
      sandbox: { id, name: "no-gateway", spec: { supervisorToken: "oss1.test.token" } },
    });
    let message = "";
    const reasons: string[] = [];
    try {
      for await (const event of events) {
        if (event.payload.case !== "platformEvent" || event.payload.value.sandboxId !== id) continue;
        const reason = event.payload.value.event?.reason ?? "";
        reasons.push(reason);
        if (reason === "GatewayUnreachable") {
          message = event.payload.value.event?.message ?? "";
          break;
        }
      }
    } finally {
      abort.abort();
    }
    expect(message).toContain("cannot reach the gateway at http://host.openshell.internal:1");
    expect(message).toContain("--grpc-endpoint");
    // The boot's milestones came first, in order.
    expect(reasons.slice(0, -1)).toEqual(["Booting", "WorkspaceSeeded", "GuestReady", "SupervisorStarted"]);
    expect((await client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
  }, 120_000);

  it("a supervisor that fails closed puts the sandbox in ERROR at once with its reason, without restarting the VM", async () => {
    const dir = stateDir();
    const { client } = await startDriver(dir);
    const id = "55555555-6666-7777-8888-999999999999";
    const consoleLog = join(dir, "sandboxes", id, "console.log");
    // No confinement launcher at that path: the supervisor fails closed at start (exit 78).
    await client.createSandbox({
      sandbox: {
        id,
        name: "fails-closed",
        spec: {
          supervisorToken: "oss1.test.token",
          environment: { OPENSHELL_LAUNCHER: "/nonexistent/openshell-launch" },
        },
      },
    });
    const events = await collectEvents(
      client,
      (event) =>
        event.payload.case === "platformEvent" &&
        event.payload.value.sandboxId === id &&
        ["SupervisorFailedClosed", "Restarting", "ProcessExited"].includes(
          event.payload.value.event?.reason ?? "",
        ),
      120_000,
    );
    const reasons = events.flatMap((event) =>
      event.payload.case === "platformEvent" && event.payload.value.sandboxId === id
        ? [event.payload.value.event?.reason]
        : [],
    );
    expect(reasons.at(-1), readFileSync(consoleLog, "utf8").slice(-4000)).toBe("SupervisorFailedClosed");
    const ready = (await client.getSandbox({ sandboxId: id })).sandbox?.status?.conditions.find(
      (c) => c.type === "Ready",
    );
    expect(ready).toMatchObject({ status: "False", reason: "SupervisorFailedClosed" });
    expect(ready?.message).toMatch(
      /^the sandbox supervisor failed closed, so the VM was not restarted: platform sandbox unavailable and the sandbox requires confinement: the confinement launcher \/nonexistent\/openshell-launch is not executable \(ENOENT\)/,
    );
    expect(readFileSync(consoleLog, "utf8")).toContain("OPENSHELL-VM-INIT supervisor exited status=78");
    // Longer than the first restart's delay: no second boot.
    await sleep(3_000);
    expect(qemuPidsUnder(dir)).toEqual([]);
    expect(readFileSync(consoleLog, "utf8").split("OPENSHELL-VM-INIT ready").length - 1).toBe(1);
    expect((await client.getSandbox({ sandboxId: id })).sandbox?.status?.conditions[0]?.reason).toBe(
      "SupervisorFailedClosed",
    );
    expect((await client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
  }, 180_000);

  it("the supervisor's workload (sleep infinity) runs confined in the VM: sandbox user, no capabilities, the sandbox netns", async () => {
    const gwState = makeStateDir();
    let gw: RunningGateway | undefined;
    try {
      gw = await startVmGateway({ stateDir: gwState });
      const id = (await gw.grpc.createSandbox({ name: "workload-box", spec: {} })).sandbox?.id ?? "";
      await waitForPhase(gw, "workload-box", SandboxPhase.READY, 180_000, {
        vmStateDir: join(gwState, "drv"),
      });
      // From an exec (itself confined, in the sandbox netns): the workload's process, found by its
      // command line; its status; the interfaces of its network namespace.
      const script = [
        "for p in /proc/[0-9]*; do",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell script; ${…} is the shell's
        '  case "$(tr "\\0" " " < $p/cmdline 2>/dev/null)" in "sleep infinity ") pid=${p#/proc/} ;; esac;',
        "done;",
        "grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status | tr -s '\\t' ' ';",
        "cut -d: -f1 /proc/$pid/net/dev | tail -n +3 | tr -d ' ' | sort | tr '\\n' ' '",
      ].join(" "); // exec refuses line breaks in arguments
      let exec = await execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sh", "-c", script] }));
      await waitFor(
        async () => {
          exec = await execOutput(gw!.grpc.execSandbox({ sandboxId: id, command: ["sh", "-c", script] }));
          return exec.stdout.includes("Uid:");
        },
        30_000,
        () => `no workload found: ${JSON.stringify(exec)}`,
      );
      const [uid, capEff, noNewPrivs, seccomp, interfaces] = exec.stdout.trim().split("\n");
      expect(uid).toBe("Uid: 10001 10001 10001 10001");
      expect([capEff, noNewPrivs, seccomp]).toEqual([
        "CapEff: 0000000000000000",
        "NoNewPrivs: 1",
        "Seccomp: 2",
      ]);
      // The sandbox namespace: loopback and its veth, not the VM's eth0.
      expect(interfaces?.trim()).toMatch(/^lo veth-s-\S+$/);
      const logs = await gw.grpc.getSandboxLogs({ sandboxId: id, lines: 2000 });
      const launch = logs.logs.find((line) => line.message.startsWith("PROC:LAUNCH [INFO] workload sleep("));
      expect(launch?.message).toMatch(/^PROC:LAUNCH \[INFO\] workload sleep\(\d+\) \[cmd:sleep infinity\]$/);
      expect(launch?.fields.confined).toBe("true");
      await gw.grpc.deleteSandbox({ name: "workload-box" });
      await waitFor(
        async () => (await gw!.grpc.listSandboxes({})).sandboxes.length === 0,
        60_000,
        () => "delete",
      );
    } finally {
      await gw?.stop("SIGTERM");
      for (const pid of qemuPidsUnder(gwState)) process.kill(pid, "SIGKILL");
      removeStateDir(gwState);
    }
  }, 300_000);

  it("StopSandbox powers the VM off and keeps its disk; StartSandbox boots the same disk again", async () => {
    const dir = stateDir();
    const { client } = await startDriver(dir);
    const id = "22222222-3333-4444-5555-666666666666";
    const consoleLog = join(dir, "sandboxes", id, "console.log");
    const readyCount = () =>
      existsSync(consoleLog)
        ? readFileSync(consoleLog, "utf8").split("OPENSHELL-VM-INIT ready").length - 1
        : 0;
    const waitUntil = async (condition: () => boolean, what: string) => {
      // A boot whose console stays silent for a third of its deadline is retried (up to ~70 s more).
      for (let i = 0; i < 1800 && !condition(); i++) await new Promise((r) => setTimeout(r, 100));
      if (!condition()) throw new Error(`timed out waiting for ${what}`);
    };

    await client.createSandbox({ sandbox: { id, name: "stop-start", spec: {} } });
    await waitUntil(() => readyCount() === 1, "the first boot");
    const [firstPid] = qemuPidsUnder(dir);

    await client.stopSandbox({ sandboxId: id });
    expect(qemuPidsUnder(dir)).toEqual([]);
    expect(readFileSync(consoleLog, "utf8")).toContain("OPENSHELL-VM-INIT poweroff");
    expect(existsSync(join(dir, "sandboxes", id, "disk.qcow2"))).toBe(true);
    const stopped = (await client.getSandbox({ sandboxId: id })).sandbox?.status?.conditions[0];
    expect(stopped).toMatchObject({ type: "Ready", status: "False", reason: "Stopped" });
    // A stop the user asked for is not a crash: longer than the first restart's delay, nothing boots.
    await sleep(3_000);
    expect(qemuPidsUnder(dir)).toEqual([]);
    expect((await client.getSandbox({ sandboxId: id })).sandbox?.status?.conditions[0]?.reason).toBe(
      "Stopped",
    );

    await client.startSandbox({ sandboxId: id });
    await waitUntil(() => readyCount() === 2, "the second boot");
    const pids = qemuPidsUnder(dir);
    expect(pids).toHaveLength(1);
    expect(pids[0]).not.toBe(firstPid);
    expect((await client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
    await waitUntil(
      () => qemuPidsUnder(dir).length === 0 && !existsSync(join(dir, "sandboxes", id)),
      "the delete",
    );
  }, 420_000);

  it("refuses environment values with line breaks or NUL, invalid names and oversized VMs, naming what is wrong", async () => {
    const dir = stateDir();
    const { client } = await startDriver(dir);
    const id = "55555555-6666-7777-8888-999999999999";
    const newline = { id, name: "env", spec: { environment: { GREETING: "hello\nworld" } } };
    const expected = {
      code: Code.InvalidArgument,
      message: "spec.environment value of GREETING contains NUL, CR or LF; values must be a single line",
    };
    expect(await rpcFailure(client.validateSandboxCreate({ sandbox: newline }))).toEqual(expected);
    expect(await rpcFailure(client.createSandbox({ sandbox: newline }))).toEqual(expected);
    const badName = { id, name: "env", spec: { template: { environment: { "A-B": "x" } } } };
    expect(await rpcFailure(client.createSandbox({ sandbox: badName }))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringContaining("spec.template.environment key 'A-B' is invalid"),
    });
    const huge = { id, name: "huge", spec: { template: { resources: { cpuLimit: "4096" } } } };
    expect(await rpcFailure(client.validateSandboxCreate({ sandbox: huge }))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^cpu 4096 is more than this host has \(\d+ CPUs\)$/),
    });
    expect(qemuPidsUnder(dir)).toEqual([]);
    expect(existsSync(join(dir, "sandboxes", id))).toBe(false);
  });

  it("a guest that never gets ready is booted again once (with its vCPUs' state), then stopped and reported with its console's tail, escaped", async () => {
    const dir = stateDir();
    const { client } = await startDriver(dir, [
      "--runtime-dir",
      hangingRuntime(dir),
      "--boot-timeout-secs",
      "3",
    ]);
    const id = "66666666-7777-8888-9999-aaaaaaaaaaaa";
    const events = collectEvents(
      client,
      (e) => e.payload.case === "platformEvent" && e.payload.value.event?.reason === "BootTimeout",
      120_000,
    );
    await client.createSandbox({ sandbox: { id, name: "hangs", spec: {} } });
    const timeout = (await events).find(
      (e) => e.payload.case === "platformEvent" && e.payload.value.event?.reason === "BootTimeout",
    );
    const messageOf = (event: compute.WatchSandboxesEvent | undefined) =>
      event?.payload.case === "platformEvent" ? (event.payload.value.event?.message ?? "") : "";
    // The first stall (its console silent for a third of the deadline) or missed deadline is
    // retried once with a fresh QEMU, saying where each vCPU was; the second is an error.
    const why = String.raw`(did not finish booting within \d+ s|stopped making progress while booting: its console was silent for \d+ s) \(tcg\)`;
    const retry = messageOf(
      (await events).find(
        (e) => e.payload.case === "platformEvent" && e.payload.value.event?.reason === "BootRetry",
      ),
    );
    expect(retry).toMatch(
      new RegExp(
        `^VM ${why} and was killed; booting it again \\(once\\)\\. vCPUs: CPU#0 RIP=[0-9a-f]{16} RSP=[0-9a-f]{16} CPL=\\d+ HLT=[01]; CPU#1 RIP=`,
      ),
    );
    const message = messageOf(timeout);
    expect(message).toMatch(
      new RegExp(`^VM ${why}; it was booted again once already, so it was stopped; console tail:\n`),
    );
    // Two boots, the first retried: with --boot-timeout-secs 3 each ends at its deadline (the
    // silence window is never under 10 s), after the hanging init printed its line.
    expect(
      readFileSync(join(dir, "sandboxes", id, "console.log"), "utf8").split("hanging-init:").length - 1,
    ).toBeGreaterThanOrEqual(1);
    expect(message).toContain("hanging-init: this guest never gets ready");
    expect(message).toContain("title:\\x1b]0;pwned\\x07:end");
    expect(message).not.toContain("\x1b");
    const condition = (await client.getSandbox({ sandboxId: id })).sandbox?.status?.conditions[0];
    expect(condition).toMatchObject({ type: "Ready", status: "False", reason: "BootTimeout" });
    expect(qemuPidsUnder(dir)).toEqual([]);
    expect((await client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
  }, 150_000);

  it("keeps the QMP socket in a private directory, also when the state dir's path is too long for one beside the disk", async () => {
    const dir = stateDir();
    const longStateDir = join(dir, "s".repeat(60));
    mkdirSync(longStateDir, { mode: 0o700 });
    const { client } = await startDriver(dir, [], longStateDir);
    const id = "77777777-8888-9999-aaaa-bbbbbbbbbbbb";
    await client.createSandbox({ sandbox: { id, name: "qmp", spec: {} } });
    const [pid] = qemuPidsUnder(dir);
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const socket = /^unix:([^,]+),/.exec(argv[argv.indexOf("-qmp") + 1] ?? "")?.[1] ?? "";
    expect(socket).not.toBe("");
    expect(socket.startsWith(longStateDir)).toBe(false);
    const socketDir = dirname(socket);
    expect(socketDir).toMatch(new RegExp(`^${tmpdir()}/openshell-vm-\\w{6}$`));
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);
    expect(statSync(socketDir).uid).toBe(process.getuid?.());
    // Stopped, the VM leaves no directory in /tmp; started again, it gets a new one.
    await client.stopSandbox({ sandboxId: id });
    expect(existsSync(socketDir)).toBe(false);
    expect((await client.deleteSandbox({ sandboxId: id })).deleted).toBe(true);
  }, 60_000);
});
