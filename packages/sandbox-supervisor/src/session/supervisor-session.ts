import { randomUUID } from "node:crypto";
import type { Duplex } from "node:stream";
import { create } from "@bufbuild/protobuf";
import {
  AsyncQueue,
  Backoff,
  emitOcsf,
  type Logger,
  OPENSHELL_VERSION,
  OpenShellError,
  sleep,
} from "@openshell/core";
import { type SupervisorMessage, SupervisorMessageSchema } from "@openshell/proto";
import { bridgeRelay } from "../relay/relay-bridge.js";
import { GatewayConnection, type Keepalive } from "./gateway-connection.js";

/** Upstream: reconnect after 1 s, doubling to 30 s. */
export const RECONNECT_INITIAL_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;
/** A session that lived this long counts as healthy: the next failure starts the backoff over. */
const HEALTHY_SESSION_MS = 10_000;
const MIN_HEARTBEAT_SECS = 5;

export interface SupervisorSessionOptions {
  sandboxId: string;
  endpoint: URL;
  supervisorToken: string;
  tls: ConstructorParameters<typeof GatewayConnection>[1];
  keepalive?: Keepalive;
  /** A new connection to the supervisor's SSH server, for each relay. */
  connectSsh: () => Duplex;
  logger: Logger;
  /** Called with each connection while it is the live one (log shipping and config sync use it). */
  onConnection?: (connection: GatewayConnection | undefined) => void;
  /** The gateway pushed config_changed: a new policy revision or setting exists. */
  onConfigChanged?: (policyVersion: number) => void;
  /** A connection already open (the start-up policy sync's) for the first attempt. */
  connection?: GatewayConnection;
}

/**
 * The supervisor's persistent session with the gateway: hello → accepted → heartbeats, and a relay
 * bridge for every RelayOpen. Reconnects with backoff (1 s doubling to 30 s, reset after a session
 * that lived) until stopped, so a restarted gateway sees the supervisor back within seconds.
 */
export class SupervisorSession {
  private readonly instanceId = randomUUID();
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private connectedFlag = false;
  private firstConnection: GatewayConnection | undefined;
  /** The live attempt's abort (its connection and relays); reconnectNow() ends it. */
  private attempt: AbortController | undefined;
  /** Ends a backoff wait early (reconnectNow()). */
  private wake = new AbortController();
  private reconnectAtOnce = false;
  /** Ended sessions whose relays are still winding down (their connection closes after them). */
  private readonly draining = new Set<Promise<void>>();

  constructor(private readonly options: SupervisorSessionOptions) {
    this.firstConnection = options.connection;
  }

  get connected(): boolean {
    return this.connectedFlag;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Drops the current connection (if any) and dials again without a backoff delay. The VM's init
   * asks for it (SIGUSR2) after a memory snapshot was restored: the snapshot's TCP connection to
   * the gateway died with the QEMU that saved it, but the guest would only notice at its next
   * heartbeat or ping.
   */
  reconnectNow(): void {
    if (this.stopped.signal.aborted) return;
    this.reconnectAtOnce = true;
    this.attempt?.abort();
    this.wake.abort();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
    await Promise.allSettled(this.draining);
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(RECONNECT_INITIAL_MS, RECONNECT_MAX_MS);
    for (let attempt = 1; !this.stopped.signal.aborted; attempt++) {
      this.reconnectAtOnce = false;
      const startedAt = Date.now();
      try {
        await this.runOnce();
        if (this.stopped.signal.aborted) return;
        throw new OpenShellError("unavailable", "gateway ended the session");
      } catch (error) {
        if (this.stopped.signal.aborted) return;
        if (Date.now() - startedAt >= HEALTHY_SESSION_MS) {
          backoff.reset();
          attempt = 1;
        }
        let delay = backoff.next();
        if (this.reconnectAtOnce) {
          this.reconnectAtOnce = false;
          backoff.reset();
          attempt = 1;
          delay = 0;
        }
        emitOcsf(this.options.logger, {
          class: "NET",
          activity: "FAIL",
          severity: "MEDIUM",
          message: `supervisor session failed, reconnecting in ${delay} ms (attempt ${attempt}): ${OpenShellError.from(error).message}`,
        });
        if (this.wake.signal.aborted) this.wake = new AbortController();
        await sleep(delay, AbortSignal.any([this.stopped.signal, this.wake.signal]));
      }
    }
  }

  private async runOnce(): Promise<void> {
    const { options } = this;
    const connection =
      this.firstConnection ?? new GatewayConnection(options.endpoint, options.tls, options.keepalive);
    this.firstConnection = undefined;
    const session = new AbortController();
    this.attempt = session;
    const abortSession = () => session.abort();
    this.stopped.signal.addEventListener("abort", abortSession, { once: true });
    const headers = { authorization: `Bearer ${options.supervisorToken}` };
    const outbound = new AsyncQueue<SupervisorMessage>(
      64,
      () => new OpenShellError("resource_exhausted", "supervisor outbound queue overflowed"),
    );
    outbound.push(
      create(SupervisorMessageSchema, {
        payload: {
          case: "hello",
          value: { sandboxId: options.sandboxId, instanceId: this.instanceId, version: OPENSHELL_VERSION },
        },
      }),
    );
    let heartbeat: NodeJS.Timeout | undefined;
    const relays = new Set<Promise<void>>();
    try {
      const inbound = connection.client.connectSupervisor(outbound, { headers, signal: session.signal });
      for await (const message of inbound) {
        const payload = message.payload;
        switch (payload.case) {
          case "sessionAccepted": {
            const secs = Math.max(payload.value.heartbeatIntervalSecs, MIN_HEARTBEAT_SECS);
            heartbeat = setInterval(
              () =>
                outbound.push(create(SupervisorMessageSchema, { payload: { case: "heartbeat", value: {} } })),
              secs * 1000,
            );
            this.connectedFlag = true;
            options.onConnection?.(connection);
            emitOcsf(options.logger, {
              class: "NET",
              activity: "OPEN",
              message: "supervisor session established",
              fields: { session_id: payload.value.sessionId, heartbeat_secs: secs },
            });
            break;
          }
          case "sessionRejected":
            throw new OpenShellError("permission_denied", `session rejected: ${payload.value.reason}`);
          case "relayOpen": {
            const relay = bridgeRelay({
              connection,
              channelId: payload.value.channelId,
              connectSsh: options.connectSsh,
              headers,
              logger: options.logger,
              signal: session.signal,
            });
            relays.add(relay);
            void relay.finally(() => relays.delete(relay));
            break;
          }
          case "configChanged":
            options.logger.debug(
              { policy_version: payload.value.policyVersion },
              "gateway pushed config_changed",
            );
            options.onConfigChanged?.(payload.value.policyVersion);
            break;
          case "relayClose":
            options.logger.debug({ channel_id: payload.value.channelId }, "gateway closed a relay");
            break;
          default:
            break;
        }
      }
      if (this.connectedFlag) {
        emitOcsf(options.logger, { class: "NET", activity: "CLOSE", message: "supervisor session ended" });
      }
    } finally {
      clearInterval(heartbeat);
      this.connectedFlag = false;
      options.onConnection?.(undefined);
      outbound.close();
      session.abort();
      this.stopped.signal.removeEventListener("abort", abortSession);
      // The next session does not wait for this one's relays to wind down (a dead SSH connection
      // after a VM restore is slow to end, and one that never ends held the loop for good); the
      // connection closes once they have, and stop() still waits for them.
      const drained = Promise.allSettled(relays).then(() => connection.close());
      this.draining.add(drained);
      void drained.finally(() => this.draining.delete(drained));
    }
  }
}
