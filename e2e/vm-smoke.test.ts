import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { CONFINED, CONFINEMENT_PROBE } from "@openshell/testing/policy-scenario";
import { findRepoRoot, isAlive, pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput, run, sshOptions, waitForPhase } from "@openshell/testing/sandbox-harness";
import { makeTestPki } from "@openshell/testing/test-pki";
import { afterEach, describe, expect, it } from "vitest";

const _REPO = findRepoRoot(import.meta.dirname);
/** TCG boots a guest and its Node supervisor in seconds; leave room for a loaded CI machine. */
const READY_TIMEOUT_MS = 120_000;

const qemuPidsUnder = (stateDir: string) => pidsOf(/^qemu-system/, stateDir);

function consoleLogs(stateDir: string): string {
  const dir = join(stateDir, "drv", "sandboxes");
  try {
    return readdirSync(dir)
      .map((id) => `--- console of ${id}\n${readFileSync(join(dir, id, "console.log"), "utf8").slice(-4000)}`)
      .join("\n");
  } catch {
    return "(no consoles)";
  }
}

function collectExec(gw: RunningGateway, sandboxId: string, command: string[]) {
  return execOutput(gw.grpc.execSandbox({ sandboxId, command }));
}

/** A TCP server on the host's 127.0.0.1 that counts the connections it accepts. */
async function loopbackServer(): Promise<{ server: Server; port: number; accepted: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no server address");
  return { server, port: address.port, accepted: () => count };
}

describe("VM sandboxes (QEMU microVM)", () => {
  const gateways: RunningGateway[] = [];
  const dirs: string[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === "fail") {
      for (const gw of gateways) process.stderr.write(`gateway log:\n${gw.output().slice(-6000)}\n`);
      for (const dir of dirs) process.stderr.write(`${consoleLogs(dir)}\n`);
    }
    for (const gw of gateways.splice(0)) await gw.stop("SIGTERM");
    for (const dir of dirs.splice(0)) {
      for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
      removeStateDir(dir);
    }
  });

  it("smoke: create, exec, ssh, write and read /sandbox, delete, no qemu left", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, memMib: 1024 });
    gateways.push(gw);
    const sandboxId = (await gw.grpc.createSandbox({ name: "vm-smoke", spec: {} })).sandbox!.id;
    await waitForPhase(gw, "vm-smoke", SandboxPhase.READY, READY_TIMEOUT_MS);

    expect(await collectExec(gw, sandboxId, ["echo", "smoke-ok"])).toEqual({
      stdout: "smoke-ok\n",
      stderr: "",
      exitCode: 0,
    });
    const token = (await gw.grpc.createSshSession({ sandboxId })).token;
    const ssh = await run(
      "ssh",
      [...sshOptions(gw, sandboxId, token), "sandbox", "echo smoke-ok; id -un; pwd"],
      {
        timeoutMs: 60_000,
      },
    );
    expect(ssh.stdout.toString()).toBe("smoke-ok\nsandbox\n/sandbox\n");

    // What agents expect (issue 10 item 12), in the exec and in an OpenSSH session.
    const tools =
      'command -v python pip node rsync; python -c "import cloudpickle, sys; print(sys.prefix)"; node -e "console.log(process.version)"';
    const expectedTools =
      /^\/sandbox\/\.venv\/bin\/python\n\/sandbox\/\.venv\/bin\/pip\n\/usr\/local\/bin\/node\n\/usr\/bin\/rsync\n\/sandbox\/\.venv\nv24\.\d+\.\d+\n$/;
    expect((await collectExec(gw, sandboxId, ["bash", "-c", tools])).stdout).toMatch(expectedTools);
    const sshTools = await run("ssh", [...sshOptions(gw, sandboxId, token), "sandbox", tools], {
      timeoutMs: 60_000,
    });
    expect(sshTools.stdout.toString()).toMatch(expectedTools);
    // `pip install` goes into the venv (Debian's own pip refuses: PEP 668), offline from a local tree.
    const pipInstall = await collectExec(gw, sandboxId, [
      "bash",
      "-c",
      [
        "mkdir -p /tmp/pkg/hello && echo 'def hi(): return 42' > /tmp/pkg/hello/__init__.py",
        `printf '[build-system]\\nrequires = ["setuptools"]\\nbuild-backend = "setuptools.build_meta"\\n[project]\\nname = "hello"\\nversion = "0.1"\\n' > /tmp/pkg/pyproject.toml`,
        "pip install -q --no-index --no-build-isolation /tmp/pkg",
        'python -c "import hello; print(hello.__file__, hello.hi())"',
      ].join(" && "),
    ]);
    expect(pipInstall.stdout, pipInstall.stderr).toMatch(
      /^\/sandbox\/\.venv\/lib\/python3\.\d+\/site-packages\/hello\/__init__\.py 42\n$/,
    );

    // Of the host's loopback the sandbox reaches nothing directly: QEMU's user network maps 10.0.2.2
    // (and the rest of 10.0.2.0/24) to the host's 127.0.0.1, the guest's host firewall (issue 10
    // item 8) leaves only the gateway's port open to the guest, and children live in the network
    // namespace whose only way out is the policy proxy (issue 13), so even that port is refused.
    const { server, port: hostOnlyPort, accepted } = await loopbackServer();
    try {
      // The rules are root's: the sandbox user cannot remove them (tried first, then probed).
      // Confined, nft cannot even open its netlink socket (seccomp: AF_NETLINK), exit 3.
      const flush = await collectExec(gw, sandboxId, [
        "bash",
        "-c",
        "/usr/sbin/nft flush ruleset; echo rc=$?",
      ]);
      expect(flush.stdout).toBe("rc=3\n");
      expect(flush.stderr).toContain("Operation not permitted");
      const connect = (host: string, port: number) =>
        `timeout 10 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>&1; echo "rc=$?"`;
      const probe = await collectExec(gw, sandboxId, [
        "bash",
        "-c",
        [
          connect("10.0.2.2", hostOnlyPort),
          connect("host.openshell.internal", hostOnlyPort),
          connect("10.0.2.5", hostOnlyPort),
          connect("10.0.2.2", gw.port),
        ].join("; "),
      ]);
      const results = probe.stdout.match(/rc=\d+/g);
      expect(results, probe.stdout).toEqual(["rc=1", "rc=1", "rc=1", "rc=1"]);
      expect(probe.stdout).toContain("Connection refused");
      expect(accepted()).toBe(0);
    } finally {
      server.close();
    }

    // Confinement (issue 13): exec and OpenSSH sessions (a PTY here) start through the native
    // launcher with the sandbox's policy (the restrictive default: /sandbox, /tmp, /dev/null
    // writable; /usr, /lib, /etc, /proc, ... readable).
    const confinementProbe = CONFINEMENT_PROBE;
    const confined = [...CONFINED];
    const execConfined = await collectExec(gw, sandboxId, ["bash", "-c", confinementProbe]);
    expect(execConfined.stdout.trim().split("\n"), execConfined.stderr).toEqual(confined);
    const sshConfined = await run(
      "ssh",
      [...sshOptions(gw, sandboxId, token), "-tt", "sandbox", confinementProbe],
      {
        timeoutMs: 60_000,
      },
    );
    expect(sshConfined.stdout.toString().replace(/\r\n/g, "\n").trim().split("\n")).toEqual(confined);

    await collectExec(gw, sandboxId, ["sh", "-c", "echo persisted > /sandbox/note.txt"]);
    expect((await collectExec(gw, sandboxId, ["cat", "/sandbox/note.txt"])).stdout).toBe("persisted\n");

    expect(qemuPidsUnder(stateDir)).toHaveLength(1);
    await gw.grpc.deleteSandbox({ name: "vm-smoke" });
    await waitFor(
      async () =>
        (await gw.grpc.listSandboxes({})).sandboxes.length === 0 && qemuPidsUnder(stateDir).length === 0,
      30_000,
      () => `qemu still running after delete: ${qemuPidsUnder(stateDir).join(",")}`,
    );
  }, 240_000);

  it("a VM supervisor dials an mTLS gateway with the client certificate the driver hands it", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const pki = await makeTestPki(mkdtempSync(join(stateDir, "pki-")));
    const gw = await startVmGateway({ stateDir, pki, memMib: 1024 });
    gateways.push(gw);
    const sandboxId = (await gw.grpc.createSandbox({ name: "vm-tls", spec: {} })).sandbox!.id;
    await waitForPhase(gw, "vm-tls", SandboxPhase.READY, READY_TIMEOUT_MS);
    expect(await collectExec(gw, sandboxId, ["echo", "over mtls"])).toEqual({
      stdout: "over mtls\n",
      stderr: "",
      exitCode: 0,
    });
    // The key is root-only inside the guest.
    expect(
      (
        await collectExec(gw, sandboxId, [
          "sh",
          "-c",
          "cat /run/openshell/tls/tls.key >/dev/null 2>&1; echo $?",
        ])
      ).stdout,
    ).toBe("1\n");
  }, 240_000);

  it("a clean gateway stop saves the VM into its memory snapshot and keeps its disk; the next start restores it with /sandbox intact", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, memMib: 1024 });
    gateways.push(gw);
    const sandboxId = (await gw.grpc.createSandbox({ name: "vm-reboot", spec: {} })).sandbox!.id;
    await waitForPhase(gw, "vm-reboot", SandboxPhase.READY, READY_TIMEOUT_MS);
    await collectExec(gw, sandboxId, ["sh", "-c", "echo survived > /sandbox/kept.txt"]);
    const [firstPid] = qemuPidsUnder(stateDir);

    await gw.stop("SIGTERM");
    gateways.splice(gateways.indexOf(gw), 1);
    expect(qemuPidsUnder(stateDir)).toEqual([]);
    // Saved, not powered off (architecture/vm-snapshots.md); vm-snapshot.test.ts checks the processes.
    const sandboxDir = join(stateDir, "drv", "sandboxes", sandboxId);
    expect(readFileSync(join(sandboxDir, "console.log"), "utf8")).not.toContain("OPENSHELL-VM-INIT poweroff");
    expect(JSON.parse(readFileSync(join(sandboxDir, "snapshot.json"), "utf8"))).toMatchObject({
      cause: "shutdown",
    });

    const again = await startVmGateway({ stateDir, port: gw.port, memMib: 1024 });
    gateways.push(again);
    await waitForPhase(again, "vm-reboot", SandboxPhase.READY, READY_TIMEOUT_MS);
    const pids = qemuPidsUnder(stateDir);
    expect(pids).toHaveLength(1);
    expect(pids[0]).not.toBe(firstPid);
    // Seen once in CI (loaded host): the restored supervisor's first session dropped ~70 ms after the
    // gateway accepted it, so READY was followed by a moment of PROVISIONING and this exec was refused
    // as not ready; the cause is not found yet (architecture/vm-snapshots.md, "What is left"). The
    // file must be there once the sandbox is READY again.
    let kept = "";
    await waitFor(
      async () => {
        await waitForPhase(again, "vm-reboot", SandboxPhase.READY, READY_TIMEOUT_MS);
        const result = await collectExec(again, sandboxId, ["cat", "/sandbox/kept.txt"]).catch(
          (error: unknown) => {
            if (error instanceof ConnectError && error.code === Code.FailedPrecondition) return undefined;
            throw error;
          },
        );
        kept = result?.stdout ?? "";
        return result !== undefined;
      },
      60_000,
      () => "the restored sandbox never stayed READY long enough to run a command",
    );
    expect(kept).toBe("survived\n");
  }, 300_000);

  it("lifetime: SIGKILL of the gateway leaves the VM running and a restarted gateway adopts it; SIGTERM stops it", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir, memMib: 1024 });
    gateways.push(gw);
    const sandboxId = (await gw.grpc.createSandbox({ name: "vm-keep", spec: {} })).sandbox!.id;
    await waitForPhase(gw, "vm-keep", SandboxPhase.READY, READY_TIMEOUT_MS);
    const [qemuPid] = qemuPidsUnder(stateDir);
    expect(qemuPid).toBeDefined();

    await gw.stop("SIGKILL");
    gateways.splice(gateways.indexOf(gw), 1);
    await new Promise((r) => setTimeout(r, 1000));
    expect(isAlive(qemuPid as number)).toBe(true);

    const again = await startVmGateway({ stateDir, port: gw.port, memMib: 1024 });
    gateways.push(again);
    await waitForPhase(again, "vm-keep", SandboxPhase.READY, READY_TIMEOUT_MS);
    expect(qemuPidsUnder(stateDir)).toEqual([qemuPid]);
    expect((await collectExec(again, sandboxId, ["echo", "adopted"])).stdout).toBe("adopted\n");

    await again.stop("SIGTERM");
    gateways.splice(gateways.indexOf(again), 1);
    await waitFor(
      () => qemuPidsUnder(stateDir).length === 0,
      30_000,
      () => "qemu survived a clean gateway stop",
    );
    expect(pidsOf(/openshell-driver-vm\.js$/, stateDir)).toEqual([]);
  }, 300_000);
});
