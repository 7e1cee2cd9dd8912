import { once } from "node:events";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { emitOcsf, type Logger } from "@openshell/core";
import { type OpenShell, type RelayFrame, RelayFrameSchema } from "@openshell/proto";

/** Largest data frame sent to the gateway (upstream's relay chunk). */
export const RELAY_FRAME_BYTES = 16 * 1024;

export interface RelayBridgeOptions {
  client: Client<typeof OpenShell>;
  channelId: string;
  sshSocketPath: string;
  headers: Record<string, string>;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * Answers one RelayOpen: opens RelayStream (first frame init{channel_id}), connects the SSH Unix
 * socket and copies bytes both ways with backpressure; the end of either direction half-closes the
 * other side.
 */
export async function bridgeRelay(options: RelayBridgeOptions): Promise<void> {
  const { channelId, logger } = options;
  const socket = net.connect(options.sshSocketPath);
  socket.setNoDelay?.(true);
  const calls = new AbortController();
  const abort = () => calls.abort();
  options.signal.addEventListener("abort", abort, { once: true });
  socket.on("error", (error) => {
    logger.debug({ channel_id: channelId, err: error.message }, "ssh socket error");
    calls.abort();
  });
  try {
    await once(socket, "connect");
    emitOcsf(logger, {
      class: "NET",
      activity: "OPEN",
      message: "relay open",
      fields: { channel_id: channelId },
    });
    const responses = options.client.relayStream(outboundFrames(channelId, socket), {
      headers: options.headers,
      signal: calls.signal,
    });
    for await (const frame of responses) {
      if (frame.payload.case !== "data" || frame.payload.value.length === 0) continue;
      if (!socket.write(frame.payload.value)) await once(socket, "drain");
    }
    socket.end();
    emitOcsf(logger, {
      class: "NET",
      activity: "CLOSE",
      message: "relay closed",
      fields: { channel_id: channelId },
    });
  } catch (error) {
    socket.destroy();
    if (options.signal.aborted) return;
    emitOcsf(logger, {
      class: "NET",
      activity: "FAIL",
      severity: "MEDIUM",
      message: `relay bridge failed: ${(error as Error).message}`,
      fields: { channel_id: channelId },
    });
  } finally {
    options.signal.removeEventListener("abort", abort);
  }
}

async function* outboundFrames(channelId: string, socket: net.Socket): AsyncGenerator<RelayFrame> {
  yield create(RelayFrameSchema, { payload: { case: "init", value: { channelId } } });
  try {
    for await (const chunk of socket as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length; offset += RELAY_FRAME_BYTES) {
        yield create(RelayFrameSchema, {
          payload: { case: "data", value: chunk.subarray(offset, offset + RELAY_FRAME_BYTES) },
        });
      }
    }
  } catch {
    // The socket failed; ending the request stream tells the gateway this side is done.
  }
}
