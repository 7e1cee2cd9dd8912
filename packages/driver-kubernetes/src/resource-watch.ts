import { Backoff, type Logger } from "@openshell/core";
import { isGone, isTimeout } from "./kube-errors.js";

/** @kubernetes/client-node's `Watch.watch`, as the watch uses it (tests pass their own). */
export type WatchFunction = (
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (type: string, object: unknown) => void,
  done: (error: unknown) => void,
) => Promise<{ abort(): void }>;

export interface KubeObject {
  metadata?: { name?: string; resourceVersion?: string };
}

export interface ResourceWatchSpec<T extends KubeObject> {
  /** For logs: `sandboxes`, `pods`, `events`. */
  resource: string;
  /** A full list and the resourceVersion to watch from. */
  list: () => Promise<{ items: T[]; resourceVersion: string }>;
  /** The collection's watch path, e.g. `/api/v1/namespaces/ns/pods`. */
  path: string;
  /** Selectors (`labelSelector`, `fieldSelector`). */
  query: Record<string, string>;
  /** The whole current state, after the first list and after every relist (deletions: diff it). */
  onSync: (items: T[]) => void;
  onEvent: (type: "ADDED" | "MODIFIED" | "DELETED", item: T) => void;
}

const RETRY_INITIAL_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * List, then watch from the list's resourceVersion, for as long as the driver runs. A watch that
 * ends (the API server closes watches every few minutes; the client ends one idle for 30 s) or
 * breaks is resumed from the last resourceVersion it saw; when that version is too old (410 Gone,
 * as an HTTP status or an ERROR event) the collection is listed again and handed to `onSync` in
 * full, so the owner can diff it and miss no deletion that happened meanwhile.
 */
export class ResourceWatch<T extends KubeObject> {
  private resourceVersion = "";
  private stopped = false;
  private current: { abort(): void } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(RETRY_INITIAL_MS, RETRY_MAX_MS);
  /** Counts of what happened, for tests and logs. */
  readonly stats = { lists: 0, watches: 0, resumes: 0, relists: 0 };

  constructor(
    private readonly spec: ResourceWatchSpec<T>,
    private readonly watchFn: WatchFunction,
    private readonly logger: Logger,
  ) {}

  /** The first list (its failure is the caller's: a driver that cannot list does not start), then the watch. */
  async start(): Promise<void> {
    await this.relist();
    this.watch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.current?.abort();
    this.current = undefined;
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.spec.list();
    this.stats.lists++;
    this.resourceVersion = resourceVersion;
    this.spec.onSync(items);
  }

  private watch(): void {
    if (this.stopped) return;
    let gone = false;
    let ended = false;
    const done = (error: unknown) => {
      if (ended) return;
      ended = true;
      this.current = undefined;
      if (this.stopped) return;
      if (gone || isGone(error)) {
        this.logger.info(
          { resource: this.spec.resource },
          "watch resourceVersion expired (410); listing again",
        );
        this.stats.relists++;
        this.scheduleRelist(0);
        return;
      }
      if (error && !isTimeout(error)) {
        this.logger.warn({ resource: this.spec.resource, err: error }, "watch broke; resuming");
        this.scheduleResume(this.backoff.next());
        return;
      }
      this.scheduleResume(0);
    };
    const onEvent = (type: string, object: unknown) => {
      if (this.stopped || ended) return;
      if (type === "ERROR") {
        if (isGone(object)) gone = true;
        else this.logger.warn({ resource: this.spec.resource, status: object }, "watch error event");
        return;
      }
      const item = object as T;
      const version = item?.metadata?.resourceVersion;
      if (version) this.resourceVersion = version;
      this.backoff.reset();
      if (type === "BOOKMARK") return;
      if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") this.spec.onEvent(type, item);
    };
    this.stats.watches++;
    const query = {
      ...this.spec.query,
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
    };
    this.watchFn(this.spec.path, query, onEvent, done).then(
      (handle) => {
        if (ended || this.stopped) handle.abort();
        else this.current = handle;
      },
      (error: unknown) => done(error),
    );
  }

  private scheduleResume(delayMs: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.stats.resumes++;
      this.watch();
    }, delayMs);
    this.retryTimer.unref();
  }

  private scheduleRelist(delayMs: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped) return;
      this.relist().then(
        () => {
          this.backoff.reset();
          this.watch();
        },
        (error: unknown) => {
          this.logger.warn({ resource: this.spec.resource, err: error }, "relist failed; retrying");
          this.scheduleRelist(this.backoff.next());
        },
      );
    }, delayMs);
    this.retryTimer.unref();
  }
}
