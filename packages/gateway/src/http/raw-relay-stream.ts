import http2 from "node:http2";
import type { Duplex } from "node:stream";
import {
  encodeDataFrames,
  type Logger,
  OpenShellError,
  RELAY_STREAM_PATH,
  RelayFrameDecoder,
  type RelayWireFrame,
} from "@openshell/core";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import { bearerToken } from "../services/bearer-token.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";

export interface RawRelayDeps {
  sessions: SupervisorSessionRegistry;
  credentials: SupervisorCredentials;
  logger: Logger;
}

/** True for a gRPC (not gRPC-web, not Connect) RelayStream call over HTTP/2. */
export function isRawRelayRequest(headers: http2.IncomingHttpHeaders): boolean {
  const contentType = headers["content-type"] ?? "";
  return (
    headers[":path"] === RELAY_STREAM_PATH &&
    (contentType === "application/grpc" || contentType === "application/grpc+proto")
  );
}

/**
 * RelayStream served straight on the HTTP/2 stream (same wire format as the generated handler in
 * services/relay-service.ts, which still serves Connect and gRPC-web). Skipping connect-es's
 * per-message objects and async iterators is what lets a relay keep up with SSH.
 */
export function serveRawRelayStream(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  deps: RawRelayDeps,
): void {
  const decoder = new RelayFrameDecoder();
  let relay: Duplex | undefined;
  let responded = false;
  let log = deps.logger;

  // Once a final status is chosen, the rest of the request is drained and ignored.
  let settled = false;
  let finalTrailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };
  const fail = (error: unknown) => {
    if (settled) return;
    settled = true;
    const failure = OpenShellError.from(error);
    relay?.destroy();
    if (stream.destroyed || stream.closed) return;
    const trailers = {
      "grpc-status": String(failure.connectCode),
      "grpc-message": encodeURIComponent(failure.message),
    };
    if (!responded) {
      responded = true;
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", ...trailers },
        { endStream: true },
      );
    } else {
      finalTrailers = trailers;
      if (!stream.writableEnded) stream.end();
    }
    stream.resume();
    // A client that keeps sending after the final status gets its stream reset (gRPC servers do the same).
    setTimeout(() => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }, 1000).unref();
  };

  const onFrames = (frames: RelayWireFrame[]) => {
    for (const frame of frames) {
      if (!relay) {
        if (frame.kind !== "init" || !frame.channelId) {
          throw new OpenShellError(
            "invalid_argument",
            "first RelayFrame must be init with non-empty channel_id",
          );
        }
        relay = claim(frame.channelId);
        continue;
      }
      if (frame.kind !== "data") {
        relay.end();
        stream.pause();
        return;
      }
      if (frame.data.length > 0 && !relay.write(frame.data)) stream.pause();
    }
  };

  const claim = (channelId: string): Duplex => {
    const sandboxId = deps.credentials.verify(bearerToken(headers.authorization));
    const claimed = deps.sessions.claimRelay(channelId, sandboxId);
    log = deps.logger.child({ sandbox_id: sandboxId, channel_id: channelId });
    responded = true;
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    // The compat response object (Http2ServerResponse) would send its own, empty trailers.
    stream.removeAllListeners("wantTrailers");
    stream.on("wantTrailers", () => stream.sendTrailers(finalTrailers));
    pumpOutbound(claimed, stream);
    claimed.on("drain", () => stream.resume());
    claimed.on("error", () => stream.close(http2.constants.NGHTTP2_CANCEL));
    log.debug("relay claimed");
    return claimed;
  };

  stream.on("data", (chunk: Buffer) => {
    if (settled) return;
    try {
      onFrames(decoder.push(chunk));
    } catch (error) {
      stream.pause();
      fail(error);
    }
  });
  stream.on("end", () => {
    if (settled) return;
    if (!relay) {
      fail(
        new OpenShellError(
          "invalid_argument",
          decoder.bufferedBytes > 0 ? "truncated RelayFrame" : "empty RelayStream",
        ),
      );
      return;
    }
    relay.end();
  });
  stream.on("error", () => relay?.destroy());
  stream.on("close", () => {
    relay?.destroy();
    log.debug("relay closed");
  });
}

/** Relay bytes → data frames on the HTTP/2 stream, pausing the relay while the stream is full. */
function pumpOutbound(relay: Duplex, stream: http2.ServerHttp2Stream): void {
  relay.on("data", (chunk: Buffer) => {
    if (chunk.length === 0) return;
    if (!stream.write(encodeDataFrames(chunk))) {
      relay.pause();
      stream.once("drain", () => relay.resume());
    }
  });
  relay.on("end", () => {
    if (!stream.destroyed) stream.end();
  });
}
