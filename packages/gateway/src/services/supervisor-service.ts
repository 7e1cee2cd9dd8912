import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { AsyncQueue, type Logger, OPENSHELL_VERSION, OpenShellError } from "@openshell/core";
import {
  GatewayHeartbeatSchema,
  type GatewayMessage,
  GatewayMessageSchema,
  PlatformEventSchema,
  SessionAcceptedSchema,
  type SupervisorMessage,
} from "@openshell/proto";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import type { ComputeRuntime } from "../compute/compute-runtime.js";
import type { SandboxEventHub } from "../events/sandbox-event-hub.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import type { ConfigChangeNotifier } from "../sessions/config-change-notifier.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";
import { bearerToken } from "./bearer-token.js";

const HEARTBEAT_INTERVAL_SECS = 15;
const OUTBOUND_CAPACITY = 64;

export interface SupervisorServiceDeps {
  records: SandboxRecords;
  sessions: SupervisorSessionRegistry;
  runtime: ComputeRuntime;
  credentials: SupervisorCredentials;
  configChanges: Pick<ConfigChangeNotifier, "message">;
  logger: Logger;
  hub: Pick<SandboxEventHub, "publishPlatformEvent">;
  heartbeatIntervalMs?: number;
}

/**
 * ConnectSupervisor: the supervisor's persistent session. hello -> SessionAccepted (followed by a
 * config_changed naming the newest policy version) -> the sandbox is promoted to READY; heartbeats every 15 s; when the stream ends (and no newer session superseded
 * it) the sandbox is demoted to PROVISIONING.
 */
export async function* connectSupervisor(
  requests: AsyncIterable<SupervisorMessage>,
  context: HandlerContext,
  deps: SupervisorServiceDeps,
): AsyncGenerator<GatewayMessage> {
  const inbound = requests[Symbol.asyncIterator]();
  const first = await inbound.next();
  if (first.done) throw new OpenShellError("invalid_argument", "stream closed before hello");
  if (first.value.payload.case !== "hello")
    throw new OpenShellError("invalid_argument", "expected SupervisorHello");
  const hello = first.value.payload.value;
  if (!hello.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
  deps.credentials.authorize(bearerToken(context.requestHeader.get("authorization")), hello.sandboxId);
  const sandbox = await deps.records.get(hello.sandboxId);
  if (!sandbox) throw new OpenShellError("not_found", "sandbox not found");

  const sandboxId = hello.sandboxId;
  const sessionId = randomUUID();
  const log = deps.logger.child({
    sandbox_id: sandboxId,
    session_id: sessionId,
    instance_id: hello.instanceId,
  });
  const outbound = new AsyncQueue<GatewayMessage>(
    OUTBOUND_CAPACITY,
    () => new OpenShellError("resource_exhausted", "supervisor session outbound queue overflowed"),
  );
  const session = {
    sessionId,
    instanceId: hello.instanceId,
    connectedAt: new Date(),
    send: (message: GatewayMessage) => {
      if (outbound.isClosed) return false;
      outbound.push(message);
      return true;
    },
    shutdown: () => outbound.close(),
  };
  const superseded = deps.sessions.register(sandboxId, session);
  log.info(
    { superseded: superseded?.sessionId, supervisor_version: hello.version || undefined },
    "supervisor session established",
  );
  reportVersionMismatch(deps, sandboxId, hello.version, log);

  const heartbeatMs = deps.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_SECS * 1000;
  const heartbeat = setInterval(
    () => outbound.push(message({ case: "heartbeat", value: create(GatewayHeartbeatSchema) })),
    heartbeatMs,
  );
  const onAbort = () => outbound.close();
  context.signal.addEventListener("abort", onAbort, { once: true });
  const readInbound = (async () => {
    try {
      for (let next = await inbound.next(); !next.done; next = await inbound.next()) {
        const payload = next.value.payload;
        if (payload.case === "relayOpenResult" || payload.case === "relayClose") {
          log.debug(
            { message: payload.case, channel_id: payload.value.channelId },
            "supervisor relay report",
          );
        }
      }
    } catch (error) {
      log.info({ err: (error as Error).message }, "supervisor stream failed");
    } finally {
      outbound.close();
    }
  })();

  try {
    yield message({
      case: "sessionAccepted",
      value: create(SessionAcceptedSchema, { sessionId, heartbeatIntervalSecs: HEARTBEAT_INTERVAL_SECS }),
    });
    // What changed while no session was up (or before this one): fetch GetSandboxConfig now.
    yield await deps.configChanges.message(sandboxId);
    if (superseded) {
      const replayed = deps.sessions.replayPendingRelays(sandboxId, session);
      if (replayed > 0) log.info({ replayed }, "pending relays replayed to the new session");
    }
    await deps.runtime.supervisorSessionConnected(sandboxId);
    yield* outbound;
  } finally {
    clearInterval(heartbeat);
    context.signal.removeEventListener("abort", onAbort);
    outbound.close();
    void readInbound;
    const removal = deps.sessions.removeIfCurrent(sandboxId, sessionId);
    if (removal === "removed") {
      log.info("supervisor session ended");
      await deps.runtime.supervisorSessionDisconnected(sandboxId);
    } else if (removal === "superseded") {
      log.info("superseded supervisor session ended");
    } else {
      log.info("supervisor session closed: the gateway is shutting down");
    }
  }
}

function message(payload: GatewayMessage["payload"]): GatewayMessage {
  return create(GatewayMessageSchema, { payload });
}

/**
 * A supervisor of another version than this gateway (a VM runtime staged by another release, or a
 * supervisor older than the version field: empty) still gets its session, but the mismatch is
 * logged and shown as a Warning event on the sandbox, with the fix.
 */
function reportVersionMismatch(
  deps: SupervisorServiceDeps,
  sandboxId: string,
  supervisorVersion: string,
  log: Logger,
): void {
  if (supervisorVersion === OPENSHELL_VERSION) return;
  const shown = supervisorVersion || "unknown (older than the version field)";
  log.warn(
    { supervisor_version: supervisorVersion, gateway_version: OPENSHELL_VERSION },
    "the sandbox's supervisor runs another version than the gateway",
  );
  deps.hub.publishPlatformEvent(
    sandboxId,
    create(PlatformEventSchema, {
      timestampMs: BigInt(Date.now()),
      source: "gateway",
      type: "Warning",
      reason: "SupervisorVersionMismatch",
      message: `the sandbox's supervisor is version ${shown}, the gateway ${OPENSHELL_VERSION}: the sandbox was created from the VM runtime of another release; recreate it (openshell sandbox delete, then create: gateway start stages this release's runtime) so both run one version`,
      metadata: { supervisor_version: supervisorVersion, gateway_version: OPENSHELL_VERSION },
    }),
  );
}
