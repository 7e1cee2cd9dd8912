import { describe, expect, it } from "vitest";
import { KeyedSerialLock } from "./keyed-serial-lock.js";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("KeyedSerialLock", () => {
  it("runs sections of one key one at a time, in order, and other keys alongside", async () => {
    const lock = new KeyedSerialLock();
    const events: string[] = [];
    const section = (key: string, name: string) =>
      lock.run(key, async () => {
        events.push(`${name} start`);
        await tick();
        events.push(`${name} end`);
        return name;
      });
    const results = await Promise.all([section("a", "a1"), section("a", "a2"), section("b", "b1")]);
    expect(results).toEqual(["a1", "a2", "b1"]);
    expect(events.indexOf("a1 end")).toBeLessThan(events.indexOf("a2 start"));
    expect(events.indexOf("b1 start")).toBeLessThan(events.indexOf("a1 end"));
    expect(lock.size).toBe(0);
  });

  it("keeps going after a section throws", async () => {
    const lock = new KeyedSerialLock();
    await expect(
      lock.run("a", async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await lock.run("a", async () => 1)).toBe(1);
    expect(lock.size).toBe(0);
  });
});
