import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { isAlive, waitFor } from "@openshell/testing/process";
import { afterEach, describe, expect, it } from "vitest";
import { endedWithSupervisor, findSetpriv } from "../src/process/parent-death-signal.js";

/**
 * Helpers the supervisor starts (the bypass monitor, a test-only workload) must die with it. The
 * "supervisor" here is a shell that starts the wrapped command and is then SIGKILLed, as a crashed
 * or OOM-killed supervisor is.
 */
describe.skipIf(findSetpriv() === undefined)("endedWithSupervisor (setpriv --pdeathsig)", () => {
  const started: number[] = [];
  afterEach(() => {
    for (const pid of started.splice(0)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  /** A parent shell that runs `command` in the background and prints its pid; resolves both pids. */
  async function parentWith(command: { file: string; args: string[] }) {
    const quoted = [command.file, ...command.args].map((word) => `'${word}'`).join(" ");
    const parent = spawn("bash", ["-c", `${quoted} & echo $!; wait`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const childPid = await new Promise<number>((resolve, reject) => {
      parent.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      parent.once("error", reject);
    });
    started.push(parent.pid as number, childPid);
    return { parentPid: parent.pid as number, childPid };
  }

  it("the wrapped command is killed when its parent is SIGKILLed", async () => {
    const { parentPid, childPid } = await parentWith(endedWithSupervisor("sleep", ["600"]));
    // The prctl is made before setpriv execs sleep: wait for the exec, then kill the parent.
    await waitFor(
      () => /\bsleep\b/.test(commandLine(childPid)),
      5_000,
      () => "sleep did not start",
    );
    process.kill(parentPid, "SIGKILL");
    await waitFor(
      () => !isAlive(childPid),
      10_000,
      () => `sleep (pid ${childPid}) outlived its parent`,
    );
  });

  it("without it (the control), the same command outlives its parent", async () => {
    const { parentPid, childPid } = await parentWith({ file: "sleep", args: ["600"] });
    await waitFor(
      () => /\bsleep\b/.test(commandLine(childPid)),
      5_000,
      () => "sleep did not start",
    );
    process.kill(parentPid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(isAlive(childPid)).toBe(true);
  });
});

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}
