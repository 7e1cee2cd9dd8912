import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough, Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { TunnelStatusError } from "./gateway-connect.js";
import { runSshProxy } from "./ssh-proxy.js";

/** A gateway stand-in: answers CONNECT with the given statuses in turn, then 200 and an SSH banner. */
async function gatewayAnswering(statuses: number[]) {
  const seen: number[] = [];
  const server = http.createServer();
  server.on("connect", (_request, socket) => {
    const status = statuses[seen.length] ?? 200;
    seen.push(status);
    if (status === 200) {
      socket.write("HTTP/1.1 200 OK\r\n\r\nSSH-2.0-standin\r\n");
      socket.on("data", () => {});
      socket.on("end", () => socket.end());
    } else {
      socket.end(`HTTP/1.1 ${status} No\r\ncontent-length: 0\r\n\r\n`);
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return { server, seen, url: new URL(`http://127.0.0.1:${port}/connect/ssh`) };
}

function proxyTo(url: URL, retryWindowMs: number) {
  const stdin = new PassThrough();
  let output = "";
  const stdout = new Writable({
    write(chunk, _encoding, done) {
      output += chunk;
      if (output.includes("SSH-2.0")) stdin.end();
      done();
    },
  });
  return {
    run: runSshProxy({ url, sandboxId: "sb-1", token: "t", stdin, stdout, retryWindowMs }),
    output: () => output,
  };
}

const servers: http.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

describe("runSshProxy", () => {
  it("retries a sandbox that is not READY yet (412) after 1 s, then 2 s, and tunnels once it is", async () => {
    const gateway = await gatewayAnswering([412, 412]);
    servers.push(gateway.server);
    const started = Date.now();
    const proxy = proxyTo(gateway.url, 60_000);
    await proxy.run;
    expect(gateway.seen).toEqual([412, 412, 200]);
    expect(proxy.output()).toBe("SSH-2.0-standin\r\n");
    // It waited between the tries (1 s + 2 s), not hammered the gateway.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
  }, 10_000);

  it("does not retry another refusal", async () => {
    const gateway = await gatewayAnswering([404]);
    servers.push(gateway.server);
    const failure = await proxyTo(gateway.url, 60_000).run.catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TunnelStatusError);
    expect((failure as TunnelStatusError).status).toBe(404);
    expect(gateway.seen).toEqual([404]);
  });

  it("gives up with the 412 when the window is over", async () => {
    const gateway = await gatewayAnswering([412, 412, 412, 412]);
    servers.push(gateway.server);
    const failure = await proxyTo(gateway.url, 300).run.catch((error: unknown) => error);
    expect((failure as TunnelStatusError).status).toBe(412);
    // The first wait (1 s) is cut to what is left of the 300 ms window: one more try, then no more.
    expect(gateway.seen).toEqual([412, 412]);
  }, 5_000);
});
