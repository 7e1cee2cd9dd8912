import type http from "node:http";
import type http2 from "node:http2";
import { OPENSHELL_VERSION } from "@openshell/core";

export type Readiness = () => { ready: boolean; reason?: string };

/**
 * /health and /healthz: the process serves HTTP. /readyz: the store is open and the compute driver
 * answers; 503 with the reason otherwise. Returns false when the path is not a health route.
 */
export function serveHealth(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
  readiness: Readiness,
): boolean {
  const path = (req.url ?? "").split("?")[0];
  if (path !== "/health" && path !== "/healthz" && path !== "/readyz") return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    reply(res, 405, { error: "use GET" });
    return true;
  }
  if (path === "/readyz") {
    const state = readiness();
    reply(
      res,
      state.ready ? 200 : 503,
      state.ready
        ? { status: "healthy", version: OPENSHELL_VERSION }
        : { status: "unavailable", reason: state.reason, version: OPENSHELL_VERSION },
    );
  } else {
    reply(res, 200, { status: "healthy", version: OPENSHELL_VERSION });
  }
  return true;
}

function reply(res: http.ServerResponse | http2.Http2ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  (res as http.ServerResponse).writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  (res as http.ServerResponse).end(text);
}
