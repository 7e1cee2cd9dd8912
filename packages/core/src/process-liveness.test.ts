import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { isAlive } from "./process-liveness.js";

describe("isAlive", () => {
  it("is true for a running process", () => {
    expect(isAlive(process.pid)).toBe(true);
  });

  it("is false for no pid at all", () => {
    expect(isAlive(0)).toBe(false);
    expect(isAlive(-1)).toBe(false);
    expect(isAlive(Number.NaN)).toBe(false);
  });

  it("counts a killed child that is not reaped yet (a zombie) as gone, and a reaped one too", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    await once(child, "spawn");
    const pid = child.pid as number;
    expect(isAlive(pid)).toBe(true);
    child.kill("SIGKILL");
    // Synchronously, before the event loop reaps it: the process is a zombie now or soon.
    const deadline = Date.now() + 5_000;
    while (isAlive(pid) && Date.now() < deadline)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    expect(isAlive(pid)).toBe(false);
    expect(child.exitCode === null && child.signalCode === null).toBe(true);
    await once(child, "exit");
    expect(isAlive(pid)).toBe(false);
  });
});
