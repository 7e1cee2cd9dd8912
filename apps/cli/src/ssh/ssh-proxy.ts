import type { Readable, Writable } from "node:stream";
import pRetry from "p-retry";
import {
  type ConnectedTunnel,
  connectToGateway,
  type GatewayConnectTarget,
  TunnelStatusError,
} from "./gateway-connect.js";

/** Upstream: a sandbox that is not READY yet (412) is retried 1 s doubling to 8 s for up to 60 s. */
export const NOT_READY_RETRY_WINDOW_MS = 60_000;

export interface SshProxyOptions extends GatewayConnectTarget {
  stdin: Readable;
  stdout: Writable;
  retryWindowMs?: number;
}

/**
 * `openshell ssh-proxy`: the ProxyCommand of OpenSSH. Opens the CONNECT tunnel and pipes stdin and
 * stdout through it; resolves when both directions are done.
 */
export async function runSshProxy(options: SshProxyOptions): Promise<void> {
  const tunnel = await connectWithRetry(options, options.retryWindowMs ?? NOT_READY_RETRY_WINDOW_MS);
  const { socket } = tunnel;
  if (tunnel.leftover.length > 0) options.stdout.write(tunnel.leftover);
  // stdin's end half-closes the tunnel; the tunnel closing ends the proxy.
  await new Promise<void>((resolve) => {
    options.stdin.pipe(socket);
    socket.pipe(options.stdout, { end: false });
    socket.once("close", () => resolve());
    socket.on("error", () => socket.destroy());
    socket.resume();
  });
}

/** Retries only a 412 (not READY yet): 1 s doubling to 8 s, the last wait cut to what is left of the window. */
function connectWithRetry(target: GatewayConnectTarget, windowMs: number): Promise<ConnectedTunnel> {
  return pRetry(() => connectToGateway(target), {
    retries: Number.POSITIVE_INFINITY,
    minTimeout: 1_000,
    factor: 2,
    maxTimeout: 8_000,
    maxRetryTime: windowMs,
    shouldRetry: ({ error }) => error instanceof TunnelStatusError && error.status === 412,
  });
}
