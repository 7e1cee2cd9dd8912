import type http2 from "node:http2";
import type { Duplex } from "node:stream";
import {
  emitOcsf,
  encodeDataFrames,
  encodeInitFrame,
  type Logger,
  RELAY_STREAM_PATH,
  RelayFrameDecoder,
} from "@openshell/core";
import type { GatewayConnection } from "../session/gateway-connection.js";

export interface RelayBridgeOptions {
  connection: GatewayConnection;
  channelId: string;
  /** A new connection to the supervisor's SSH server (in-process: SandboxSshServer.connectInProcess). */
  connectSsh: () => Duplex;
  headers: Record<string, string>;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * Answers one RelayOpen: opens RelayStream on the session's HTTP/2 connection with init{channel_id}
 * first, connects to the SSH server, and copies bytes both ways with backpressure; the end of
 * either direction half-closes the other. Frames are written straight on the HTTP/2 stream (gRPC
 * wire format, see core/relay-frame-codec.ts): connect-es's per-message cost halved throughput.
 */
export async function bridgeRelay(options: RelayBridgeOptions): Promise<void> {
  const { channelId, logger } = options;
  const fields = { channel_id: channelId };
  const socket = options.connectSsh();
  let stream: http2.ClientHttp2Stream | undefined;
  const teardown = () => {
    socket.destroy();
    stream?.destroy();
  };
  options.signal.addEventListener("abort", teardown, { once: true });
  try {
    stream = await options.connection.openStream(RELAY_STREAM_PATH, options.headers);
    stream.write(encodeInitFrame(channelId));
    emitOcsf(logger, { class: "NET", activity: "OPEN", message: "relay open", fields });
    const outcome = await pump(socket, stream);
    if (outcome.grpcStatus === "0" || outcome.grpcStatus === undefined) {
      emitOcsf(logger, { class: "NET", activity: "CLOSE", message: "relay closed", fields });
    } else {
      throw new Error(
        `gateway ended the relay: ${decodeURIComponent(outcome.grpcMessage ?? "")} (grpc-status ${outcome.grpcStatus})`,
      );
    }
  } catch (error) {
    teardown();
    if (options.signal.aborted) return;
    emitOcsf(logger, {
      class: "NET",
      activity: "FAIL",
      severity: "MEDIUM",
      message: `relay bridge failed: ${(error as Error).message}`,
      fields,
    });
  } finally {
    options.signal.removeEventListener("abort", teardown);
  }
}

interface RelayOutcome {
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
}

function pump(socket: Duplex, stream: http2.ClientHttp2Stream): Promise<RelayOutcome> {
  return new Promise((resolve, reject) => {
    const decoder = new RelayFrameDecoder();
    const outcome: RelayOutcome = { grpcStatus: undefined, grpcMessage: undefined };
    const status = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) {
        outcome.grpcStatus = String(headers["grpc-status"]);
        outcome.grpcMessage = headers["grpc-message"] as string | undefined;
      }
    };
    stream.on("response", status);
    stream.on("trailers", status);

    // gateway → socket
    stream.on("data", (chunk: Buffer) => {
      let frames: ReturnType<RelayFrameDecoder["push"]>;
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        reject(error);
        return;
      }
      for (const frame of frames) {
        if (frame.kind === "data" && frame.data.length > 0 && !socket.write(frame.data)) stream.pause();
      }
    });
    socket.on("drain", () => stream.resume());
    stream.on("end", () => socket.end());

    // socket → gateway
    socket.on("data", (chunk: Buffer) => {
      if (chunk.length > 0 && !stream.write(encodeDataFrames(chunk))) socket.pause();
    });
    stream.on("drain", () => socket.resume());
    socket.on("end", () => stream.end());

    socket.on("error", reject);
    stream.on("error", reject);
    let closed = 0;
    const onClose = () => {
      if (++closed === 2) resolve(outcome);
    };
    socket.on("close", onClose);
    stream.on("close", () => {
      if (outcome.grpcStatus !== undefined && outcome.grpcStatus !== "0") socket.destroy();
      onClose();
    });
  });
}
