import net from "node:net";
import type { Logger } from "@openshell/core";
import { OpenShellError } from "@openshell/core";
import { HOST_ALIAS } from "./container-spec.js";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export interface ContainerEndpoint {
  /** The URL containers dial (their /etc/hosts maps HOST_ALIAS to the bridge address). */
  url: string;
  close(): Promise<void>;
}

/**
 * How a container reaches the gateway. A gateway on a routable address is dialled as it is. A
 * gateway on loopback (a local `openshell gateway start`) is not reachable from a container's
 * network namespace, so the driver listens on the host's address on its own bridge network, same
 * port, and splices each connection to the loopback port: nothing is opened beyond that bridge,
 * the gateway keeps listening on 127.0.0.1 only, and containers dial `HOST_ALIAS:<port>` (in the
 * gateway certificate's names). The port is the gateway's, so a restarted driver listens where
 * the running containers already dial.
 */
export async function containerEndpoint(
  endpoint: string,
  hostAddress: string,
  logger: Logger,
): Promise<ContainerEndpoint> {
  if (!URL.canParse(endpoint)) {
    throw new OpenShellError("config_invalid", `--openshell-endpoint '${endpoint}' is not a URL`);
  }
  const url = new URL(endpoint);
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]") {
    throw new OpenShellError(
      "config_invalid",
      `--openshell-endpoint '${endpoint}' is not reachable from containers; use 127.0.0.1, ${HOST_ALIAS} or a routable address`,
    );
  }
  if (!LOOPBACK_HOSTS.has(url.hostname)) return { url: endpoint.replace(/\/$/, ""), close: async () => {} };
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const target = url.hostname.startsWith("[") || url.hostname === "::1" ? "::1" : "127.0.0.1";
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target, port });
    sockets.add(client);
    sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", done).on("close", done);
    upstream.on("error", done).on("close", done);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new OpenShellError(
          "unavailable",
          `cannot listen on ${hostAddress}:${port} (the gateway's port on the sandbox network) to forward containers to ${target}:${port}: ${error.code ?? error.message}`,
        ),
      ),
    );
    server.listen({ host: hostAddress, port }, () => resolve());
  });
  logger.info(
    { listen: `${hostAddress}:${port}`, target: `${target}:${port}` },
    "forwarding the sandbox network to the gateway",
  );
  url.hostname = HOST_ALIAS;
  return {
    url: url.toString().replace(/\/$/, ""),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
