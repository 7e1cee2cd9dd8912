import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, isAlive, type Logger } from "@openshell/core";
import { SandboxPhase } from "@openshell/proto";
import { makeStateDir, type RunningGateway, removeStateDir } from "@openshell/testing/gateway-harness";
import { waitFor } from "@openshell/testing/process";
import {
  makeWorkdir,
  startGatewayWithSupervisors,
  supervisorLog,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChildConfiner } from "../src/confinement/child-confiner.js";
import type { SandboxNetwork } from "../src/network/sandbox-network.js";
import { resolveRunAsUser } from "../src/ssh/run-as-user.js";
import { WorkloadProcess } from "../src/workload/workload-process.js";
import { canCreateNamespaces, createTestNetwork } from "./network-harness.js";
import { confinedTestPolicyState } from "./ssh-harness.js";

const BUILD = new URL("../native/build.sh", import.meta.url).pathname;

/** A logger whose raw JSON lines are kept (to see what a log reader gets, escapes included). */
function rawLogger(): { logger: Logger; raw: string[]; records: () => Array<Record<string, unknown>> } {
  const raw: string[] = [];
  const destination = {
    write(text: string) {
      for (const line of text.split("\n")) if (line.trim()) raw.push(line);
    },
  };
  return {
    logger: createLogger({ name: "workload-test", level: "debug", destination }),
    raw,
    records: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/**
 * The workload as the supervisor starts it (§3.3 step 14): through the native launcher with the
 * policy's confinement, in the sandbox's network namespace, as the sandbox user, with the proxy
 * variables; its output becomes log lines and its start and end OCSF PROC events. Host kernel, as root.
 */
describe.skipIf(!canCreateNamespaces)(
  "the workload, confined (root, namespaces, the native launcher)",
  () => {
    const { logger, raw, records } = rawLogger();
    let network: SandboxNetwork;
    let confiner: ChildConfiner;
    let workdir: string;

    beforeAll(async () => {
      const launcherPath = execFileSync("bash", [BUILD], { encoding: "utf8" }).trim();
      workdir = mkdtempSync(join(tmpdir(), "workload-"));
      chmodSync(workdir, 0o777);
      network = await createTestNetwork(logger);
      const policyState = confinedTestPolicyState();
      confiner = new ChildConfiner({
        launcherPath,
        policyState,
        user: resolveRunAsUser("nobody"),
        workdir,
        logger,
        netnsPath: () => network.netnsPath,
      });
    }, 60_000);

    afterAll(async () => {
      await network?.destroy();
      if (workdir) rmSync(workdir, { recursive: true, force: true });
    });

    const start = (command: string[], timeoutSecs = 0) =>
      WorkloadProcess.start({
        command,
        workdir,
        user: resolveRunAsUser("nobody"),
        switchUser: true,
        env: { OPENSHELL_SANDBOX_NAME: "box", ...network.childEnvironment() },
        confiner,
        timeoutSecs,
        interactive: false,
        logger,
      });

    it("runs as the sandbox user without capabilities, in the sandbox netns, with the proxy variables; output is logged", async () => {
      const script = [
        "id -un > facts",
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' ' >> facts",
        "readlink /proc/self/ns/net >> facts",
        'echo "proxy=$HTTPS_PROXY sandbox=$OPENSHELL_SANDBOX name=$OPENSHELL_SANDBOX_NAME" >> facts',
        "read line || echo stdin-empty >> facts",
        "printf 'out \\033]0;title\\007 line\\n'",
        "echo to-stderr >&2",
        "i=0; while [ $i -lt 50 ]; do printf '%0100d' 0; i=$((i + 1)); done",
        "exit 7",
      ].join("; ");
      const workload = await start(["/bin/sh", "-c", script]);
      const exit = await workload.exited;
      expect(exit).toMatchObject({ code: 7, signal: null, timedOut: false, exitCode: 7 });
      const facts = readFileSync(join(workdir, "facts"), "utf8").trim().split("\n");
      const netnsInode = statSync(network.netnsPath).ino;
      const hostNetns = execFileSync("readlink", ["/proc/self/ns/net"], { encoding: "utf8" }).trim();
      expect(facts).toEqual([
        "nobody",
        "CapEff: 0000000000000000",
        "NoNewPrivs: 1",
        "Seccomp: 2",
        `net:[${netnsInode}]`,
        `proxy=${network.proxyUrl} sandbox=1 name=box`,
        "stdin-empty",
      ]);
      expect(facts).not.toContain(hostNetns);

      const lines = records();
      const launch = lines.find((line) => String(line.msg).startsWith("PROC:LAUNCH"));
      // The command is cut at 256 characters in the event.
      expect(launch?.msg).toBe(
        `PROC:LAUNCH [INFO] workload sh(${workload.pid}) [cmd:${`/bin/sh -c ${script}`.slice(0, 256)}]`,
      );
      expect(launch).toMatchObject({ workload: true, pid: workload.pid, confined: true, user: "nobody" });
      const end = lines.find((line) => String(line.msg).startsWith("PROC:TERMINATE"));
      expect(end?.msg).toBe(`PROC:TERMINATE [INFO] workload sh(${workload.pid}) [exit:7]`);
      expect(end).toMatchObject({ exit_code: 7, signal: null, timed_out: false });
      // Output lines: control characters kept exact in the record, escaped in the JSON text.
      // stdout and stderr are two pipes: the order between them is the reader's, not the writer's.
      const output = (stream: string) =>
        lines.filter((line) => line.workload_stream === stream).map((line) => String(line.msg));
      expect(output("stdout").map((msg) => msg.slice(0, 20))).toEqual([
        "out \u001b]0;title\u0007 line",
        "0".repeat(20),
        "0".repeat(20),
      ]);
      expect(output("stderr")).toEqual(["to-stderr"]);
      expect(raw.find((line) => line.includes("title"))).toContain("\\u001b]0;title\\u0007");
      // 5000 characters without a line end: logged in pieces of at most 4096.
      expect(
        output("stdout")
          .slice(1)
          .map((msg) => msg.length),
      ).toEqual([4096, 904]);
    }, 30_000);

    it("a workload past its timeout is killed (the whole group) and ends with 124", async () => {
      const workload = await start(["/bin/sh", "-c", "sleep 30 & sleep 30"], 1);
      const exit = await workload.exited;
      expect(exit).toMatchObject({ signal: "SIGTERM", timedOut: true, exitCode: 124 });
      expect(isAlive(workload.pid)).toBe(false);
      const end = records().find(
        (line) => String(line.msg).startsWith("PROC:TERMINATE") && line.pid === workload.pid,
      );
      expect(end?.msg).toBe(
        `PROC:TERMINATE [MEDIUM] workload sh(${workload.pid}) killed after its 1 s timeout [signal:SIGTERM]`,
      );
      // Nothing of its group is left (the background sleep included; killed ones may take a moment
      // to be reaped).
      const group = () =>
        execFileSync("ps", ["-eo", "pgid=,pid=,stat=,args="], { encoding: "utf8" })
          .split("\n")
          .filter((line) => Number(line.trim().split(/\s+/)[0]) === workload.pid);
      await waitFor(
        () => group().length === 0,
        5_000,
        () => `left in the group:\n${group().join("\n")}`,
      );
    }, 30_000);
  },
);

/**
 * The real supervisor process against a real gateway (host supervisors of the test driver, run
 * test-only: the confinement is the test above's): the workload's exit ends the supervisor with its
 * exit code, `--timeout` gives 124, SIGTERM stops the workload first, and the PROC events reach the
 * gateway's log for `openshell logs`.
 */
describe("the supervisor's workload (real gateway, host supervisors)", () => {
  const gateways: Array<{ gw: RunningGateway; stateDir: string }> = [];
  let workdir: string;
  let script: string;

  beforeAll(() => {
    workdir = makeWorkdir();
    script = join(workdir, "workload.sh");
    // One script, what it does chosen by the sandbox's name (the supervisor passes it on).
    writeFileSync(
      script,
      [
        "#!/bin/sh",
        'case "$OPENSHELL_SANDBOX_NAME" in',
        "  exit-box) echo workload-says-hello; exit 3 ;;",
        "  *) exec sleep 600 ;;",
        "esac",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
  });

  afterAll(async () => {
    for (const { gw, stateDir } of gateways) {
      await gw.stop("SIGTERM");
      removeStateDir(stateDir);
    }
    rmSync(workdir, { recursive: true, force: true });
  });

  async function gateway(extraArgs: string[]) {
    const stateDir = makeStateDir();
    const gw = await startGatewayWithSupervisors({
      stateDir,
      workdir,
      env: {
        OPENSHELL_TEST_DRIVER_SUPERVISOR_ARGS: JSON.stringify([
          "--run-as-user",
          "nobody",
          "--workdir",
          workdir,
          ...extraArgs,
        ]),
      },
    });
    gateways.push({ gw, stateDir });
    return { gw, stateDir };
  }

  /** The workload's pid, from its PROC:LAUNCH line in the supervisor's log. */
  async function launchedWorkload(stateDir: string, id: string): Promise<number> {
    let pid = 0;
    await waitFor(
      () => {
        pid = Number(
          /PROC:LAUNCH \[INFO\] workload workload\.sh\((\d+)\)/.exec(supervisorLog(stateDir, id))?.[1] ?? 0,
        );
        return pid > 0;
      },
      10_000,
      () => `no PROC:LAUNCH\n${supervisorLog(stateDir, id)}`,
    );
    return pid;
  }

  const readyCondition = async (gw: RunningGateway, name: string) =>
    (await gw.grpc.getSandbox({ name })).sandbox?.status?.conditions.find((c) => c.type === "Ready");

  async function gatewayLogs(gw: RunningGateway, sandboxId: string): Promise<string[]> {
    const answer = await gw.grpc.getSandboxLogs({ sandboxId, lines: 500 });
    return answer.logs.map((line) => line.message);
  }

  it("the workload's exit code is the supervisor's; its output and PROC events reach the gateway", async () => {
    const { gw, stateDir } = await gateway(["--", script]);
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "exit-box" })).sandbox!.id;
    await waitForPhase(gw, "exit-box", SandboxPhase.ERROR, 30_000);
    expect((await readyCondition(gw, "exit-box"))?.message).toBe("supervisor exited (code 3)");
    const log = supervisorLog(stateDir, id);
    expect(log).toMatch(/PROC:LAUNCH \[INFO\] workload workload\.sh\(\d+\) \[cmd:.*workload\.sh\]/);
    expect(log).toMatch(/PROC:TERMINATE \[INFO\] workload workload\.sh\(\d+\) \[exit:3\]/);
    await waitFor(
      async () => (await gatewayLogs(gw, id)).some((line) => line.includes("[exit:3]")),
      10_000,
      () =>
        `the PROC:TERMINATE line did not reach the gateway\nsupervisor log:\n${supervisorLog(stateDir, id)}`,
    );
    const shipped = await gatewayLogs(gw, id);
    expect(shipped).toContain("workload-says-hello");
    expect(shipped.some((line) => /^PROC:LAUNCH \[INFO\] workload workload\.sh\(\d+\)/.test(line))).toBe(
      true,
    );
  }, 60_000);

  it("SIGTERM to the supervisor stops the workload first, then the supervisor exits 0", async () => {
    const { gw, stateDir } = await gateway(["--", script]);
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "stay-box" })).sandbox!.id;
    await waitForPhase(gw, "stay-box", SandboxPhase.READY, 30_000);
    const workloadPid = await launchedWorkload(stateDir, id);
    expect(isAlive(workloadPid)).toBe(true);
    const pid = supervisorPid(stateDir, id);
    process.kill(pid, "SIGTERM");
    await waitFor(
      () => !isAlive(pid),
      15_000,
      () => `the supervisor did not stop\n${supervisorLog(stateDir, id)}`,
    );
    expect(isAlive(workloadPid)).toBe(false);
    const log = supervisorLog(stateDir, id);
    expect(log).toMatch(
      new RegExp(`PROC:TERMINATE \\[INFO\\] workload workload\\.sh\\(${workloadPid}\\) \\[signal:SIGTERM\\]`),
    );
    expect(log.indexOf("[signal:SIGTERM]")).toBeLessThan(log.indexOf("openshell-sandbox stopped"));
    await waitForPhase(gw, "stay-box", SandboxPhase.ERROR, 10_000);
    expect((await readyCondition(gw, "stay-box"))?.message).toBe("supervisor exited (code 0)");
  }, 60_000);

  it("SIGKILL to the supervisor ends its workload too (test-only: no launcher, setpriv's parent-death signal)", async () => {
    const { gw, stateDir } = await gateway(["--", script]);
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "killed-box" })).sandbox!.id;
    await waitForPhase(gw, "killed-box", SandboxPhase.READY, 30_000);
    const workloadPid = await launchedWorkload(stateDir, id);
    expect(isAlive(workloadPid)).toBe(true);
    process.kill(supervisorPid(stateDir, id), "SIGKILL");
    await waitFor(
      () => !isAlive(workloadPid),
      10_000,
      () => `the workload (pid ${workloadPid}) outlived its SIGKILLed supervisor`,
    );
  }, 60_000);

  it("--timeout 1 on sleep 30: the workload is killed and the supervisor exits 124", async () => {
    const { gw, stateDir } = await gateway(["--timeout", "1", "--", "sleep", "30"]);
    const id = (await gw.grpc.createSandbox({ spec: {}, name: "slow-box" })).sandbox!.id;
    await waitForPhase(gw, "slow-box", SandboxPhase.ERROR, 30_000);
    expect((await readyCondition(gw, "slow-box"))?.message).toBe("supervisor exited (code 124)");
    expect(supervisorLog(stateDir, id)).toMatch(
      /PROC:TERMINATE \[MEDIUM\] workload sleep\(\d+\) killed after its 1 s timeout \[signal:SIGTERM\]/,
    );
  }, 60_000);
});
