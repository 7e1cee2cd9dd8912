import { once } from "node:events";
import type { Duplex } from "node:stream";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { type Logger, OpenShellError, RELAY_FRAME_BYTES } from "@openshell/core";
import { type RelayFrame, RelayFrameSchema } from "@openshell/proto";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";
import { bearerToken } from "./bearer-token.js";

export interface RelayServiceDeps {
  sessions: SupervisorSessionRegistry;
  credentials: SupervisorCredentials;
  logger: Logger;
}

/**
 * RelayStream: the supervisor's side of one relay. The first frame claims a pending channel; then
 * `data` frames flow both ways between this stream and the requester (SSH tunnel or exec).
 */
export async function* relayStream(
  requests: AsyncIterable<RelayFrame>,
  context: HandlerContext,
  deps: RelayServiceDeps,
): AsyncGenerator<RelayFrame> {
  const inbound = requests[Symbol.asyncIterator]();
  const first = await inbound.next();
  if (first.done) throw new OpenShellError("invalid_argument", "empty RelayStream");
  const init = first.value.payload;
  if (init.case !== "init" || !init.value.channelId) {
    throw new OpenShellError("invalid_argument", "first RelayFrame must be init with non-empty channel_id");
  }
  const channelId = init.value.channelId;
  const sandboxId = deps.credentials.verify(bearerToken(context.requestHeader.get("authorization")));
  const relay = deps.sessions.claimRelay(channelId, sandboxId);
  const log = deps.logger.child({ sandbox_id: sandboxId, channel_id: channelId });
  log.debug("relay claimed");

  const abort = () => relay.destroy();
  context.signal.addEventListener("abort", abort, { once: true });
  const pumpIn = copyFramesInto(inbound, relay).catch((error: unknown) => {
    log.debug({ err: (error as Error).message }, "relay inbound ended with an error");
    relay.destroy();
  });
  try {
    for await (const chunk of relay as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length; offset += RELAY_FRAME_BYTES) {
        yield dataFrame(chunk.subarray(offset, offset + RELAY_FRAME_BYTES));
      }
    }
  } catch (error) {
    log.debug({ err: (error as Error).message }, "relay outbound ended with an error");
  } finally {
    context.signal.removeEventListener("abort", abort);
    relay.destroy();
    void pumpIn;
    log.debug("relay closed");
  }
}

/** Writes inbound data frames into `target` with backpressure, then half-closes it. */
async function copyFramesInto(inbound: AsyncIterator<RelayFrame>, target: Duplex): Promise<void> {
  for (let next = await inbound.next(); !next.done; next = await inbound.next()) {
    const payload = next.value.payload;
    if (payload.case !== "data") break;
    if (payload.value.length === 0) continue;
    if (target.destroyed) return;
    if (!target.write(payload.value)) await once(target, "drain");
  }
  target.end();
}

function dataFrame(bytes: Uint8Array): RelayFrame {
  return create(RelayFrameSchema, { payload: { case: "data", value: bytes } });
}
