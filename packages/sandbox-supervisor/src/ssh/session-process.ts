/** What to start for a session channel, already resolved to a file, its arguments and identity. */
export interface LaunchSpec {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Omitted when the supervisor already runs as the target user. */
  uid: number | undefined;
  gid: number | undefined;
}

export interface PtySize {
  cols: number;
  rows: number;
}

export type ProcessExit = { code: number; signal?: undefined } | { code?: undefined; signal: string };

/** A child process wired to an SSH channel. */
export interface SessionProcess {
  readonly pid: number;
  /** Settles once the child is reaped and all of its output has been written to the channel. */
  readonly exited: Promise<ProcessExit>;
  /** Settles once the child is reaped, whatever holds its output open. */
  readonly gone: Promise<void>;
  resize(size: PtySize): void;
  signal(signal: NodeJS.Signals): void;
  /** Hang-up for the process group, SIGKILL if it is still there after the grace period. */
  terminate(): void;
}

export const KILL_GRACE_MS = 2000;
