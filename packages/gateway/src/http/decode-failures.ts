import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  type Interceptor,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  readAllBytes,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import {
  findTrailerError,
  contentTypeRegExp as grpcContentType,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";

/*
 * connect-es reports a request whose protobuf bytes do not decode as INTERNAL, as if the server
 * had failed. It is the caller's input that is wrong: INVALID_ARGUMENT. connect-es offers no hook
 * into its decoding, so the failure is recognised by where it happens, never by its message:
 * - a unary request is decoded before any interceptor runs, so an INTERNAL answer to a unary call
 *   whose message never reached the interceptor chain is a decoding failure (the only other
 *   INTERNAL there, a request body that broke off, has nobody left to read the answer);
 * - a streaming call's messages are decoded while the implementation reads them, so INTERNAL
 *   raised by pulling the next request message is one too.
 * gRPC-web is left as it is (its status is encoded inside the response body).
 */

interface DecodeTracking {
  reachedImplementation: boolean;
}

const DECODE_TRACKING = createContextKey<DecodeTracking | undefined>(undefined, {
  description: "whether the request message was decoded",
});

/** Per-request state `decodeFailureInterceptor` and `answerDecodeFailures` share. */
export function trackDecoding(values: ContextValues): void {
  values.set(DECODE_TRACKING, { reachedImplementation: false });
}

export const decodeFailureInterceptor: Interceptor = (next) => async (req) => {
  const tracking = req.contextValues.get(DECODE_TRACKING);
  if (tracking) tracking.reachedImplementation = true;
  if (!req.stream) return next(req);
  return next({ ...req, message: remapDecodeFailures(req.message, req.method.input.typeName) });
};

async function* remapDecodeFailures<T>(messages: AsyncIterable<T>, typeName: string): AsyncGenerator<T> {
  const iterator = messages[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<T>;
      try {
        next = await iterator.next();
      } catch (error) {
        throw asDecodeFailure(ConnectError.from(error), typeName);
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

function asDecodeFailure(error: ConnectError, typeName: string): ConnectError {
  if (error.code !== Code.Internal) return error;
  return new ConnectError(
    `the request could not be decoded as ${typeName} (${error.rawMessage}); send a valid protobuf message`,
    Code.InvalidArgument,
    undefined,
    undefined,
    error,
  );
}

/**
 * Runs one unary call (`handle`) and turns an INTERNAL answer given before the message was decoded
 * into INVALID_ARGUMENT, for the Connect protocol (JSON error body) and gRPC (trailers).
 */
export async function answerDecodeFailures(
  method: DescMethod,
  request: UniversalServerRequest,
  handle: (request: UniversalServerRequest) => Promise<UniversalServerResponse>,
): Promise<UniversalServerResponse> {
  const tracking = request.contextValues?.get(DECODE_TRACKING);
  const response = await handle(request);
  if (!tracking || method.methodKind !== "unary") return response;
  const typeName = method.input.typeName;
  const contentType = request.header.get("content-type") ?? "";
  if (response.trailer && grpcContentType.test(contentType)) {
    const trailer = response.trailer;
    return {
      ...response,
      body: afterBody(response.body, () => {
        const error = findTrailerError(trailer);
        if (error && !tracking.reachedImplementation)
          setTrailerStatus(trailer, asDecodeFailure(error, typeName));
      }),
    };
  }
  const isConnectError =
    response.status !== 200 && response.header?.get("content-type") === contentTypeUnaryJson;
  if (!isConnectError || tracking.reachedImplementation || !response.body) return response;
  const bytes = await readAllBytes(response.body, Number.MAX_SAFE_INTEGER);
  const error = errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown));
  const remapped = asDecodeFailure(error, typeName);
  if (remapped === error) return { ...response, body: createAsyncIterable([bytes]) };
  const body = errorToJsonBytes(remapped, undefined);
  const header = new Headers(response.header);
  header.set("content-length", String(body.byteLength));
  return { status: codeToHttpStatus(remapped.code), header, body: createAsyncIterable([body]) };
}

/** The same body, with `done` run once it has been read to the end (when gRPC trailers are final). */
async function* afterBody(
  body: AsyncIterable<Uint8Array> | undefined,
  done: () => void,
): AsyncGenerator<Uint8Array> {
  if (body) yield* body;
  done();
}
