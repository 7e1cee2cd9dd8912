import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { OpenShell } from "@openshell/proto";
import type { GatewayTarget } from "./gateway-target.js";

export type OpenShellClient = Client<typeof OpenShell>;

export interface GatewayConnection {
  client: OpenShellClient;
  /** Closes the HTTP/2 session so the process can exit without waiting for idle timeouts. */
  close(): void;
}

/** A gRPC client over one HTTP/2 connection (mTLS with the gateway's client bundle for https). */
export function connectGateway(target: GatewayTarget): GatewayConnection {
  const baseUrl = target.endpoint.origin;
  const tls = target.tls;
  const nodeOptions =
    target.endpoint.protocol === "https:" && tls
      ? { ca: tls.ca, ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}) }
      : undefined;
  const sessionManager = new Http2SessionManager(baseUrl, undefined, nodeOptions);
  const transport = createGrpcTransport({ baseUrl, sessionManager, nodeOptions });
  return {
    client: createClient(OpenShell, transport),
    close: () => sessionManager.abort(),
  };
}
