import type { Writable } from "node:stream";

/**
 * Resolves once everything written to `writable` so far has been handed on (for an SSH channel:
 * sent within the peer's window), or when it closes or `signal` aborts. An empty write is queued
 * behind the pending data, so its callback marks the point where they are through.
 */
export function flushWritable(writable: Writable, signal: AbortSignal): Promise<void> {
  if (writable.destroyed || writable.writableEnded || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      writable.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    writable.once("close", done);
    signal.addEventListener("abort", done, { once: true });
    writable.write(Buffer.alloc(0), done);
  });
}
