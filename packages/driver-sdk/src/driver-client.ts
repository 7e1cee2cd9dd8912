import net from "node:net";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { compute } from "@openshell/proto";

export type ComputeDriverClient = Client<typeof compute.ComputeDriver>;

export interface DriverConnection {
  client: ComputeDriverClient;
  /** Ends the HTTP/2 session; in-flight calls fail with CANCELED. */
  close(): void;
}

/** Dials a ComputeDriver served on a Unix socket (gRPC over h2c). */
export function connectToDriver(socketPath: string): DriverConnection {
  const baseUrl = "http://compute-driver.local";
  const sessionManager = new Http2SessionManager(
    baseUrl,
    { pingIntervalMs: 10_000, pingTimeoutMs: 5_000 },
    { createConnection: () => net.connect(socketPath) },
  );
  const transport = createGrpcTransport({ baseUrl, sessionManager });
  return {
    client: createClient(compute.ComputeDriver, transport),
    close: () => sessionManager.abort(),
  };
}
