import type http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Logger } from "@openshell/core";
import { answerDecodeFailures, decodeFailureInterceptor, trackDecoding } from "./decode-failures.js";
import { endUnreadRequestAfterResponse } from "./end-unread-request.js";
import type { RequestHandler } from "./gateway-server.js";
import { protoServices } from "./proto-services.js";
import { answerUnknownRpc, withUnimplementedMethods } from "./unimplemented-rpc.js";

export interface RpcHandlerOptions {
  /** What the gateway implements; every other method of every service in the protos is UNIMPLEMENTED. */
  implementations: ReadonlyArray<{ service: DescService; impl: object }>;
  /** Largest request message accepted (RESOURCE_EXHAUSTED beyond). */
  readMaxBytes: number;
  shutdownSignal: AbortSignal;
  logger: Logger;
}

/**
 * gRPC, gRPC-web and Connect for every service in our protos (connect-node's adapter, plus: methods
 * without an implementation and RPC paths no proto declares answer UNIMPLEMENTED naming the method;
 * undecodable requests answer INVALID_ARGUMENT). Anything that is not an RPC gets 404.
 */
export function createRpcHandler(options: RpcHandlerOptions): RequestHandler {
  const router = createConnectRouter({
    readMaxBytes: options.readMaxBytes,
    // No gzip: relay and exec streams carry already-encrypted SSH bytes, and compressing them cost
    // the gateway ~3/4 of its CPU on bulk transfers (bench/relay-bench.ts).
    acceptCompression: [],
    shutdownSignal: options.shutdownSignal,
    interceptors: [decodeFailureInterceptor],
  });
  const implemented = new Map(options.implementations.map(({ service, impl }) => [service.typeName, impl]));
  for (const service of protoServices()) {
    router.service(service, withUnimplementedMethods(service, implemented.get(service.typeName) ?? {}));
  }
  const handlers = new Map<string, UniversalHandler>(
    router.handlers.map((handler) => [handler.requestPath, handler]),
  );

  return (req, res) => {
    if ("stream" in req) endUnreadRequestAfterResponse(req, res as http2.Http2ServerResponse);
    const handler = handlers.get((req.url ?? "").split("?", 1)[0] as string);
    if (!handler) {
      if (!answerUnknownRpc(req, res)) {
        res.statusCode = 404;
        res.end();
      }
      return;
    }
    const values = createContextValues();
    trackDecoding(values);
    const request = universalRequestFromNodeRequest(req, res, undefined, values);
    answerDecodeFailures(handler.method, request, handler)
      .then((response) => universalResponseToNodeResponse(response, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.warn(
          { rpc: `${handler.service.typeName}/${handler.method.name}`, err: (reason as Error)?.message },
          "RPC handler failed",
        );
      });
  };
}
