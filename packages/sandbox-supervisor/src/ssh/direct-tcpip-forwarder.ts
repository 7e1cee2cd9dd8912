import net from "node:net";
import { emitOcsf } from "@openshell/core";
import type { ServerChannel, TcpipRequestInfo } from "ssh2";
import { flushWritable } from "./channel-io.js";
import { isLoopbackAddress, isLoopbackHost, isValidPort } from "./loopback-destination.js";
import type { SshServerContext } from "./ssh-context.js";

/**
 * `direct-tcpip` channels (`ssh -L`) of one connection, to loopback destinations only so the
 * sandbox cannot be used as a generic proxy. The channel is accepted once the TCP connection is
 * up; each direction ends on its own (half-close) and the channel closes when both have.
 */
export class DirectTcpipForwarder {
  private readonly sockets = new Set<net.Socket>();
  private readonly disposed = new AbortController();

  constructor(
    private readonly context: SshServerContext,
    private readonly connectionId: number,
  ) {}

  handle(accept: () => ServerChannel | undefined, reject: () => void, info: TcpipRequestInfo): void {
    const { destIP: host, destPort: port } = info;
    const destination = `${host}:${port}`;
    if (!isValidPort(port) || !isLoopbackHost(host)) {
      const why = isValidPort(port) ? "non-loopback destination" : "port outside 1-65535 for";
      this.refuse(`direct-tcpip rejected: ${why} ${destination}`, destination);
      reject();
      return;
    }
    const connectInNamespace = this.context.connectLoopback;
    if (connectInNamespace) {
      // The sandbox's services listen in its network namespace, not the supervisor's.
      connectInNamespace(host, port).then(
        ({ socket, remoteAddress }) => {
          this.sockets.add(socket);
          socket.once("close", () => this.sockets.delete(socket));
          socket.on("error", () => socket.destroy());
          this.connected(accept, reject, socket, remoteAddress, host, destination);
        },
        (error: Error) => {
          this.fail(`direct-tcpip: failed to connect to ${destination}: ${error.message}`, destination);
          reject();
        },
      );
      return;
    }
    const socket = net.connect({ host, port, allowHalfOpen: true });
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    let channel: ServerChannel | undefined;
    socket.on("error", (error) => {
      if (channel) {
        socket.destroy();
        return;
      }
      this.fail(`direct-tcpip: failed to connect to ${destination}: ${error.message}`, destination);
      reject();
    });
    socket.once("connect", () => {
      channel = this.connected(accept, reject, socket, socket.remoteAddress, host, destination);
    });
  }

  private connected(
    accept: () => ServerChannel | undefined,
    reject: () => void,
    socket: net.Socket,
    remoteAddress: string | undefined,
    host: string,
    destination: string,
  ): ServerChannel | undefined {
    // "localhost" is resolved by the resolver; check where it actually led.
    if (!isLoopbackAddress(remoteAddress)) {
      socket.destroy();
      this.refuse(`direct-tcpip rejected: ${host} resolved to ${remoteAddress}`, destination);
      reject();
      return undefined;
    }
    const channel = accept();
    if (!channel) {
      socket.destroy();
      return undefined;
    }
    this.bridge(channel, socket);
    return channel;
  }

  dispose(): void {
    this.disposed.abort();
    for (const socket of this.sockets) socket.destroy();
  }

  private bridge(channel: ServerChannel, socket: net.Socket): void {
    channel.on("error", () => socket.destroy());
    channel.once("close", () => socket.destroy());
    channel.pipe(socket);
    socket.pipe(channel, { end: false });
    // ssh2 closes a server channel as soon as its writable side ends, so the TCP FIN becomes a
    // channel EOF by hand and the channel ends only once the socket has closed both ways.
    socket.once("end", () => {
      void flushWritable(channel, this.disposed.signal).then(() => channel.eof());
    });
    socket.once("close", () => channel.end());
  }

  private refuse(message: string, destination: string): void {
    emitOcsf(this.context.logger, {
      class: "SSH",
      activity: "REFUSE",
      severity: "MEDIUM",
      disposition: "BLOCKED",
      message,
      fields: { connection_id: this.connectionId, destination },
    });
  }

  private fail(message: string, destination: string): void {
    emitOcsf(this.context.logger, {
      class: "SSH",
      activity: "FAIL",
      severity: "LOW",
      message,
      fields: { connection_id: this.connectionId, destination },
    });
  }
}
