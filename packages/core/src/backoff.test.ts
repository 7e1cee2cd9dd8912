import { describe, expect, it } from "vitest";
import { Backoff, sleep } from "./backoff.js";

describe("Backoff", () => {
  it("starts at the initial delay and doubles up to the cap", () => {
    const backoff = new Backoff(100, 1000);
    expect(Array.from({ length: 7 }, () => backoff.next())).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it("caps a delay that does not land on a power of two exactly", () => {
    const backoff = new Backoff(300, 500);
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([300, 500, 500]);
  });

  it("starts over after reset", () => {
    const backoff = new Backoff(50, 400);
    backoff.next();
    backoff.next();
    backoff.next();
    backoff.reset();
    expect([backoff.next(), backoff.next()]).toEqual([50, 100]);
  });

  it("keeps separate instances independent", () => {
    const a = new Backoff(10, 100);
    const b = new Backoff(10, 100);
    a.next();
    a.next();
    expect(b.next()).toBe(10);
  });
});

describe("sleep", () => {
  it("resolves after the delay", async () => {
    const started = performance.now();
    await sleep(30);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it("resolves at once when the signal is already aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await Promise.race([
      sleep(60_000, controller.signal).then(() => "slept"),
      new Promise((resolve) => setTimeout(() => resolve("timed out"), 1000)),
    ]);
    expect(result).toBe("slept");
  });

  it("resolves early, without throwing, when the signal aborts", async () => {
    const controller = new AbortController();
    const slept = sleep(60_000, controller.signal).then(() => "slept");
    setTimeout(() => controller.abort(), 10);
    const result = await Promise.race([
      slept,
      new Promise((resolve) => setTimeout(() => resolve("timed out"), 1000)),
    ]);
    expect(result).toBe("slept");
  });
});
