import http2 from "node:http2";

/** How often, and how long at most, a finished response is checked for its END_STREAM being sent. */
const END_STREAM_POLL_MS = 10;
const END_STREAM_WAIT_MS = 10_000;

/**
 * A response can be complete while the request body is still arriving: a Connect unary request
 * over the read limit is answered RESOURCE_EXHAUSTED after the first MiB, and nobody reads the
 * rest. HTTP/2 then stalls the stream on flow control with the unread window buffered, and a
 * client that finishes sending before it reads never sees the answer. RFC 9113 §8.1: after a
 * complete response the server may end the stream with RST_STREAM(NO_ERROR). It must go out after
 * the response's last frame: "finish" comes before gRPC's trailers are even queued (a reset then
 * loses the status), so the reset waits until nghttp2 reports our side closed (END_STREAM sent).
 * Node has no event for that; the poll runs only for such half-read streams. For RPC streams only:
 * a raw relay reads the HTTP/2 stream itself and keeps reading after its response ended.
 */
export function endUnreadRequestAfterResponse(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
): void {
  const stream = res.stream;
  stream.once("finish", () => {
    if (req.complete || stream.closed) return;
    const startedAt = Date.now();
    const poll = setInterval(() => {
      if (stream.closed || req.complete) {
        clearInterval(poll);
        return;
      }
      if (!stream.state.localClose && Date.now() - startedAt < END_STREAM_WAIT_MS) return;
      clearInterval(poll);
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }, END_STREAM_POLL_MS);
    poll.unref();
  });
}
