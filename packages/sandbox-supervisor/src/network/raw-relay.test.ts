import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { listenLocal as listen, pattern, readAll, sha256 } from "@openshell/testing/byte-streams";
import { afterEach, describe, expect, it } from "vitest";
import { RelayUpstream } from "./raw-relay.js";

describe("RelayUpstream", () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A relay between a user socket and `onUpstream`'s server; resolves the user's socket. */
  async function relayed(onUpstream: (socket: Socket) => void, clientHead = Buffer.alloc(0)) {
    const upstreamServer = createServer({ allowHalfOpen: true }, onUpstream);
    servers.push(upstreamServer);
    const upstreamPort = await listen(upstreamServer);
    const front = createServer((client) => {
      sockets.push(client);
      void RelayUpstream.connect("127.0.0.1", upstreamPort, 5000).then((upstream) => {
        sockets.push(upstream.socket);
        upstream.relayTo(client, clientHead);
      });
    });
    servers.push(front);
    const user = connect(await listen(front), "127.0.0.1");
    sockets.push(user);
    await once(user, "connect");
    return user;
  }

  it("carries 48 MiB intact to a slow reader (reads pause while a write still holds the buffer)", async () => {
    const payload = pattern(48 << 20, 7);
    const user = await relayed((socket) => {
      socket.end(payload);
    });
    const received = await readAll(user, 4 << 20, 20);
    expect(received.length).toBe(payload.length);
    expect(sha256(received)).toBe(sha256(payload));
  });

  it("keeps what a server says before the relay starts, and its close", async () => {
    const user = await relayed((socket) => socket.end("220 banner\r\n"));
    expect((await readAll(user)).toString()).toBe("220 banner\r\n");
  });

  it("passes a half-close on: the server reads to the client's end, then answers", async () => {
    const user = await relayed((socket) => {
      void readAll(socket).then((request) => socket.end(`got ${request.length} bytes: ${sha256(request)}`));
    }, Buffer.from("head:"));
    const body = pattern(3 << 20, 11);
    user.end(body);
    const answer = (await readAll(user)).toString();
    expect(answer).toBe(
      `got ${body.length + 5} bytes: ${sha256(Buffer.concat([Buffer.from("head:"), body]))}`,
    );
  });

  it("rejects when nothing listens", async () => {
    const server = createServer();
    const port = await listen(server);
    await new Promise((r) => server.close(r));
    await expect(RelayUpstream.connect("127.0.0.1", port, 5000)).rejects.toThrow(/ECONNREFUSED/);
  });
});
