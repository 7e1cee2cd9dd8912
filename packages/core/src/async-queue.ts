/**
 * A bounded single-consumer queue that turns pushed events into an async iterable. When the consumer
 * falls more than `capacity` items behind, the queue fails with `overflowError` instead of growing
 * without bound (a slow watcher must reconnect, not exhaust the gateway's memory).
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((error: unknown) => void) | undefined;
  private closed = false;
  private failure: unknown;

  constructor(
    private readonly capacity: number,
    private readonly overflowError: () => Error,
  ) {}

  push(item: T): void {
    if (this.closed) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      this.failWaiting = undefined;
      resolve({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.capacity) {
      this.fail(this.overflowError());
      return;
    }
    this.items.push(item);
  }

  /** True once closed or failed: later pushes are dropped. */
  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.settleWaiter();
  }

  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = error;
    this.closed = true;
    this.items.length = 0;
    this.settleWaiter();
  }

  private settleWaiter(): void {
    if (this.failure !== undefined && this.failWaiting) this.failWaiting(this.failure);
    else this.waiting?.({ value: undefined, done: true });
    this.waiting = undefined;
    this.failWaiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.failure !== undefined) return Promise.reject(this.failure);
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.failWaiting = reject;
        });
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      // Consumers such as connect-es call throw() when the stream they feed fails.
      throw: (error?: unknown) => {
        this.fail(error ?? new Error("queue consumer failed"));
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
