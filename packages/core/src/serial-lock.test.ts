import { describe, expect, it } from "vitest";
import { SerialLock } from "./serial-lock.js";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("SerialLock", () => {
  it("runs sections one at a time in arrival order", async () => {
    const lock = new SerialLock();
    const events: string[] = [];
    let inside = 0;
    const section = (name: string, ticks: number) => async () => {
      inside++;
      expect(inside).toBe(1);
      events.push(`start ${name}`);
      for (let i = 0; i < ticks; i++) await tick();
      events.push(`end ${name}`);
      inside--;
      return name;
    };
    const results = await Promise.all([
      lock.run(section("a", 5)),
      lock.run(section("b", 1)),
      lock.run(section("c", 3)),
    ]);
    expect(results).toEqual(["a", "b", "c"]);
    expect(events).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
  });

  it("rejects only the failing section and keeps running the ones after it", async () => {
    const lock = new SerialLock();
    const order: string[] = [];
    const failed = lock.run(async () => {
      order.push("fails");
      throw new Error("section failed");
    });
    const next = lock.run(async () => {
      order.push("next");
      return 7;
    });
    await expect(failed).rejects.toThrow("section failed");
    await expect(next).resolves.toBe(7);
    expect(order).toEqual(["fails", "next"]);
  });

  it("does not start a section before the previous one settles", async () => {
    const lock = new SerialLock();
    let release!: () => void;
    const first = lock.run(() => new Promise<void>((resolve) => (release = resolve)));
    let secondStarted = false;
    const second = lock.run(async () => {
      secondStarted = true;
    });
    for (let i = 0; i < 5; i++) await tick();
    expect(secondStarted).toBe(false);
    release();
    await first;
    await second;
    expect(secondStarted).toBe(true);
  });

  it("keeps separate locks independent", async () => {
    const a = new SerialLock();
    const b = new SerialLock();
    a.run(() => new Promise(() => {})); // never settles
    await expect(b.run(async () => "free")).resolves.toBe("free");
  });
});
