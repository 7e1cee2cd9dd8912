/**
 * Where the driver is in Docker's event stream: the first nanosecond it has not seen. GET /events
 * replays every buffered event at or after `since`; with `since` in whole seconds a resumed stream
 * (or a driver started in the same second as a container) got that second's events again, and a
 * container's one start became two `Started` events. The cursor asks from the microsecond it
 * stands at and drops whatever it was given from before.
 */
export class DockerEventCursor {
  private next: bigint;

  /** @param startNano the daemon's clock when the driver lists the containers: earlier events are in the list. */
  constructor(startNano: bigint) {
    this.next = startNano;
  }

  /** `since` for GET /events: seconds with microseconds (a number keeps no more), never past the cursor. */
  since(): number {
    return Number(this.next / 1000n) / 1e6;
  }

  /** Whether an event (its `timeNano`) is new, moving the cursor past it; an event without one counts as new. */
  accept(timeNano: bigint | undefined): boolean {
    if (timeNano === undefined) return true;
    if (timeNano < this.next) return false;
    this.next = timeNano + 1n;
    return true;
  }
}

/**
 * The daemon's clock in nanoseconds from `SystemTime` of GET /info (RFC 3339 with nanoseconds, in
 * the daemon's zone); the local clock if it does not parse.
 */
export function daemonTimeNano(systemTime: string | undefined): bigint {
  const ms = systemTime ? Date.parse(systemTime) : Number.NaN;
  if (!Number.isFinite(ms)) return BigInt(Date.now()) * 1_000_000n;
  const fraction = /\.(\d+)/.exec(systemTime ?? "")?.[1] ?? "";
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0").slice(0, 9));
}
