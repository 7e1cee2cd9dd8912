import { describe, expect, it } from "vitest";
import { CrashRestartPolicy } from "./crash-restart-policy.js";

const limits = { maxRestarts: 5, windowMs: 600_000, initialDelayMs: 1_000, maxDelayMs: 8_000 };

describe("CrashRestartPolicy", () => {
  it("restarts with doubling, capped delays and gives up after the limit within the window", () => {
    let now = 0;
    const policy = new CrashRestartPolicy(limits, () => now);
    const delays: number[] = [];
    for (let i = 1; i <= 5; i++) {
      now += 20_000;
      const decision = policy.onCrash();
      expect(decision).toMatchObject({ restart: true, attempt: i, of: 5 });
      if (decision.restart) delays.push(decision.delayMs);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 8_000]);
    now += 20_000;
    expect(policy.onCrash()).toEqual({ restart: false, crashes: 6, windowMs: 600_000 });
  });

  it("forgets crashes older than the window", () => {
    let now = 0;
    const policy = new CrashRestartPolicy(limits, () => now);
    for (let i = 0; i < 5; i++) policy.onCrash();
    now += 600_000;
    expect(policy.onCrash()).toMatchObject({ restart: true, attempt: 1, delayMs: 1_000 });
  });

  it("starts over after reset (a start the user asked for)", () => {
    const policy = new CrashRestartPolicy(limits, () => 0);
    for (let i = 0; i < 6; i++) policy.onCrash();
    policy.reset();
    expect(policy.onCrash()).toMatchObject({ restart: true, attempt: 1 });
  });
});
