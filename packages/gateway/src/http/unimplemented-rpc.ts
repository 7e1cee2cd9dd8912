import type http from "node:http";
import http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";

function unimplementedError(serviceTypeName: string, methodName: string): ConnectError {
  return new ConnectError(`${serviceTypeName}/${methodName} is not implemented yet`, Code.Unimplemented);
}

/** `impl` plus, for every method of `service` it lacks, one that answers UNIMPLEMENTED naming it. */
export function withUnimplementedMethods<S extends DescService>(service: S, impl: object): ServiceImpl<S> {
  const complete: Record<string, unknown> = { ...impl };
  for (const method of service.methods) {
    if (typeof complete[method.localName] === "function") continue;
    complete[method.localName] = () => {
      throw unimplementedError(service.typeName, method.name);
    };
  }
  return complete as ServiceImpl<S>;
}

/** `/<package>.<Service>/<Method>`: how gRPC, gRPC-web and Connect name a method in the path. */
const RPC_PATH = /^\/((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*)\/([A-Za-z_][A-Za-z0-9_]*)$/;
const GRPC_CONTENT_TYPE = /^application\/grpc(-web(-text)?)?(\+[a-z]+)?(;|$)/i;
const CONNECT_STREAM_CONTENT_TYPE = /^application\/connect\+[a-z]+(;|$)/i;
const CONNECT_UNARY_CONTENT_TYPE = /^application\/(proto|json)(;|$)/i;
/** Connect's end-of-stream envelope flag. */
const END_STREAM_FLAG = 0b10;

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Answers an RPC to a service or method no proto of ours declares (e.g. upstream's UpdateConfig or
 * the openshell.inference.v1.Inference service) with UNIMPLEMENTED in the caller's protocol instead
 * of a bare HTTP 404. Returns false when the request is not an RPC (wrong path shape or content type).
 */
export function answerUnknownRpc(req: NodeRequest, res: NodeResponse): boolean {
  const [path = "", query = ""] = (req.url ?? "").split("?", 2);
  const match = RPC_PATH.exec(path);
  if (!match) return false;
  const error = unimplementedError(match[1] as string, match[2] as string);
  const contentType = String(req.headers["content-type"] ?? "");
  if (GRPC_CONTENT_TYPE.test(contentType)) {
    answerTrailersOnly(req, res, contentType, error);
  } else if (CONNECT_STREAM_CONTENT_TYPE.test(contentType)) {
    const json = Buffer.from(JSON.stringify({ error: errorToJson(error, undefined) }));
    const envelope = Buffer.alloc(5 + json.length);
    envelope.writeUInt8(END_STREAM_FLAG, 0);
    envelope.writeUInt32BE(json.length, 1);
    json.copy(envelope, 5);
    answer(req, res, 200, { "content-type": contentType }, envelope);
  } else if (
    CONNECT_UNARY_CONTENT_TYPE.test(contentType) ||
    (req.method === "GET" && new URLSearchParams(query).has("encoding"))
  ) {
    answer(
      req,
      res,
      codeToHttpStatus(error.code),
      { "content-type": "application/json" },
      Buffer.from(errorToJsonBytes(error, {})),
    );
  } else {
    return false;
  }
  return true;
}

/** gRPC's trailers-only response: the status travels in the one HEADERS frame, which ends the stream. */
function answerTrailersOnly(
  req: NodeRequest,
  res: NodeResponse,
  contentType: string,
  error: ConnectError,
): void {
  const status = setTrailerStatus(new Headers(), error);
  const headers: Record<string, string> = { "content-type": contentType };
  status.forEach((value, name) => {
    headers[name] = value;
  });
  if ("stream" in req) {
    req.stream.respond({ ...headers, [http2.constants.HTTP2_HEADER_STATUS]: 200 }, { endStream: true });
  } else {
    (res as http.ServerResponse).writeHead(200, headers).end();
  }
}

function answer(
  req: NodeRequest,
  res: NodeResponse,
  status: number,
  headers: Record<string, string>,
  body: Buffer,
): void {
  const all = { ...headers, "content-length": String(body.length) };
  if ("stream" in req) {
    req.stream.respond({ ...all, [http2.constants.HTTP2_HEADER_STATUS]: status });
    req.stream.end(body);
  } else {
    (res as http.ServerResponse).writeHead(status, all).end(body);
  }
}
