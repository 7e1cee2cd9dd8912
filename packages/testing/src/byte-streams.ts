import { createHash } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo, Server, Socket } from "node:net";

/** Deterministic bytes that differ at every offset (a buffer reused too early shows in a checksum). */
export function pattern(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

export const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** Listens on 127.0.0.1, a free port; the port. */
export async function listenLocal(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Reads everything until the end, pausing for `pauseMs` every `every` bytes (a slow reader). */
export function readAll(socket: Socket, every = Number.POSITIVE_INFINITY, pauseMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sincePause = 0;
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      sincePause += chunk.length;
      if (sincePause >= every) {
        sincePause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
    });
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}
