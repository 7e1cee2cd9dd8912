export interface CrashRestartLimits {
  /** Restarts allowed within `windowMs`; the crash after them is final. */
  maxRestarts: number;
  windowMs: number;
  /** Delay before the first restart; doubles with every further crash in the window. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export type CrashDecision =
  | { restart: true; attempt: number; of: number; delayMs: number }
  | { restart: false; crashes: number; windowMs: number };

export const DEFAULT_CRASH_RESTART_LIMITS: CrashRestartLimits = {
  maxRestarts: 5,
  windowMs: 10 * 60_000,
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
};

/**
 * When a VM that should be running dies: restart it after 1 s, 2 s, 4 s… (capped), counting only the
 * crashes of the last `windowMs`, and give up after `maxRestarts` of them. The clock is injected so
 * the policy is tested without waiting.
 */
export class CrashRestartPolicy {
  private crashes: number[] = [];

  constructor(
    private readonly limits: CrashRestartLimits = DEFAULT_CRASH_RESTART_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  onCrash(): CrashDecision {
    const now = this.now();
    this.crashes = [...this.crashes.filter((at) => now - at < this.limits.windowMs), now];
    const attempt = this.crashes.length;
    if (attempt > this.limits.maxRestarts)
      return { restart: false, crashes: attempt, windowMs: this.limits.windowMs };
    const delayMs = Math.min(this.limits.initialDelayMs * 2 ** (attempt - 1), this.limits.maxDelayMs);
    return { restart: true, attempt, of: this.limits.maxRestarts, delayMs };
  }

  /** A start the user asked for gets a fresh budget. */
  reset(): void {
    this.crashes = [];
  }
}
