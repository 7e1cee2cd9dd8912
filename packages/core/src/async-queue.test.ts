import { describe, expect, it } from "vitest";
import { AsyncQueue } from "./async-queue.js";

const overflow = () => new Error("consumer fell behind");

async function drain<T>(queue: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of queue) out.push(item);
  return out;
}

describe("AsyncQueue", () => {
  it("yields pushed items in order and ends after close", async () => {
    const queue = new AsyncQueue<number>(10, overflow);
    queue.push(1);
    queue.push(2);
    queue.push(3);
    queue.close();
    expect(await drain(queue)).toEqual([1, 2, 3]);
  });

  it("hands an item straight to a waiting consumer", async () => {
    const queue = new AsyncQueue<string>(10, overflow);
    const iterator = queue[Symbol.asyncIterator]();
    const next = iterator.next();
    queue.push("a");
    expect(await next).toEqual({ value: "a", done: false });
  });

  it("ends a waiting consumer when closed", async () => {
    const queue = new AsyncQueue<string>(10, overflow);
    const next = queue[Symbol.asyncIterator]().next();
    queue.close();
    expect(await next).toEqual({ value: undefined, done: true });
    expect(queue.isClosed).toBe(true);
  });

  it("drops pushes after close", async () => {
    const queue = new AsyncQueue<number>(10, overflow);
    queue.push(1);
    queue.close();
    queue.push(2);
    expect(await drain(queue)).toEqual([1]);
  });

  it("fails with the overflow error once more than capacity items wait, dropping what was buffered", async () => {
    const queue = new AsyncQueue<number>(2, overflow);
    queue.push(1);
    queue.push(2);
    expect(queue.isClosed).toBe(false);
    queue.push(3);
    expect(queue.isClosed).toBe(true);
    const iterator = queue[Symbol.asyncIterator]();
    await expect(iterator.next()).rejects.toThrow("consumer fell behind");
    queue.push(4);
    await expect(iterator.next()).rejects.toThrow("consumer fell behind");
  });

  it("does not count items handed to a waiting consumer against capacity", async () => {
    const queue = new AsyncQueue<number>(1, overflow);
    const iterator = queue[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) {
      const next = iterator.next();
      queue.push(i);
      expect(await next).toEqual({ value: i, done: false });
    }
    expect(queue.isClosed).toBe(false);
  });

  it("rejects a waiting consumer when failed", async () => {
    const queue = new AsyncQueue<number>(10, overflow);
    const next = queue[Symbol.asyncIterator]().next();
    queue.fail(new Error("upstream broke"));
    await expect(next).rejects.toThrow("upstream broke");
  });

  it("fails buffered items away: the consumer sees the failure, not the items", async () => {
    const queue = new AsyncQueue<number>(10, overflow);
    queue.push(1);
    queue.fail(new Error("upstream broke"));
    await expect(drain(queue)).rejects.toThrow("upstream broke");
  });

  it("ignores fail after close", async () => {
    const queue = new AsyncQueue<number>(10, overflow);
    queue.push(1);
    queue.close();
    queue.fail(new Error("late"));
    expect(await drain(queue)).toEqual([1]);
  });

  it("closes when the consumer stops iterating (return)", async () => {
    const queue = new AsyncQueue<number>(10, overflow);
    queue.push(1);
    queue.push(2);
    for await (const item of queue) {
      expect(item).toBe(1);
      break;
    }
    expect(queue.isClosed).toBe(true);
  });

  it("fails when the consumer calls throw, with its error or a default one", async () => {
    const given = new AsyncQueue<number>(10, overflow);
    const iterator = given[Symbol.asyncIterator]();
    expect(await iterator.throw?.(new Error("stream failed"))).toEqual({ value: undefined, done: true });
    await expect(iterator.next()).rejects.toThrow("stream failed");

    const bare = new AsyncQueue<number>(10, overflow);
    const bareIterator = bare[Symbol.asyncIterator]();
    await bareIterator.throw?.();
    await expect(bareIterator.next()).rejects.toThrow("queue consumer failed");
  });
});
