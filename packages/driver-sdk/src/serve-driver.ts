import { chmod, mkdir, rm, stat } from "node:fs/promises";
import http2 from "node:http2";
import net from "node:net";
import { dirname } from "node:path";
import type { ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type Logger, mapServiceErrors, OpenShellError } from "@openshell/core";
import { compute } from "@openshell/proto";

export type ComputeDriverImpl = ServiceImpl<typeof compute.ComputeDriver>;

export interface ServeDriverOptions {
  impl: ComputeDriverImpl;
  socketPath: string;
  logger: Logger;
}

export interface ServedDriver {
  close(): Promise<void>;
}

/** Linux limits sun_path to 108 bytes including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH = 107;

/**
 * Serves a ComputeDriver over gRPC (h2c) on a Unix socket that only its owner can open (0600).
 * A stale socket file left by a crashed driver is replaced; a live one is an error.
 */
export async function serveComputeDriver(options: ServeDriverOptions): Promise<ServedDriver> {
  const { socketPath, logger } = options;
  if (Buffer.byteLength(socketPath) > MAX_UNIX_SOCKET_PATH) {
    throw new OpenShellError(
      "config_invalid",
      `driver socket path is ${Buffer.byteLength(socketPath)} bytes, over the ${MAX_UNIX_SOCKET_PATH}-byte limit of Unix sockets: ${socketPath}. Use a shorter state directory.`,
    );
  }
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  await removeStaleSocket(socketPath);

  const shutdown = new AbortController();
  const handler = connectNodeAdapter({
    grpc: true,
    connect: false,
    grpcWeb: false,
    shutdownSignal: shutdown.signal,
    routes: (router) =>
      router.service(compute.ComputeDriver, mapServiceErrors(compute.ComputeDriver, options.impl)),
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(socketPath, 0o600);
  logger.info({ socket: socketPath }, "compute driver listening");

  return {
    async close() {
      shutdown.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, 2000);
      await closed;
      clearTimeout(timer);
      await rm(socketPath, { force: true });
    },
  };
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  const exists = await stat(socketPath).then(
    () => true,
    () => false,
  );
  if (!exists) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) {
    throw new OpenShellError(
      "already_exists",
      `another process is already serving on ${socketPath}; stop it or choose another --bind-socket`,
    );
  }
  await rm(socketPath, { force: true });
}
