import type { Readable, Writable } from "node:stream";
import { Backoff, sleep } from "@openshell/core";
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

async function connectWithRetry(target: GatewayConnectTarget, windowMs: number): Promise<ConnectedTunnel> {
  const deadline = Date.now() + windowMs;
  const backoff = new Backoff(1_000, 8_000);
  for (;;) {
    try {
      return await connectToGateway(target);
    } catch (error) {
      const delay = backoff.next();
      if (!(error instanceof TunnelStatusError) || error.status !== 412 || Date.now() + delay > deadline)
        throw error;
      await sleep(delay);
    }
  }
}
