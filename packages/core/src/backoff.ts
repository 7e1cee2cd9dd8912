/** Exponential backoff: `initialMs`, doubling, capped at `maxMs`; `reset()` starts over. */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {
    this.nextMs = initialMs;
  }

  next(): number {
    const current = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.maxMs);
    return current;
  }

  reset(): void {
    this.nextMs = this.initialMs;
  }
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
