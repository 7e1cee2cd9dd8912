import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetnsConnector } from "../src/network/netns-connector.js";
import type { SandboxNetwork } from "../src/network/sandbox-network.js";
import { canCreateNamespaces, captureLogger, createTestNetwork, runInNamespace } from "./network-harness.js";

describe.skipIf(!canCreateNamespaces)(
  "ssh -L destinations inside the sandbox namespace (NetnsConnector)",
  () => {
    const { logger } = captureLogger();
    let network: SandboxNetwork;
    let connector: NetnsConnector;
    let server: ChildProcess;
    let dir: string;
    const port = 18_000 + (process.pid % 1000);

    beforeAll(async () => {
      network = await createTestNetwork(logger);
      dir = mkdtempSync(join(tmpdir(), "netns-connector-"));
      connector = new NetnsConnector(network.name, join(dir, "connect.sock"), logger);
      // A service only the namespace's loopback has (the supervisor's own loopback does not).
      server = spawn("ip", [
        "netns",
        "exec",
        network.name,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        `import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', ${port})); s.listen()\nwhile True:\n c,_=s.accept()\n try:\n  d=c.recv(100); c.sendall(b'echo:'+d); c.shutdown(socket.SHUT_WR)\n except OSError: pass\n c.close()`,
      ]);
      for (let i = 0; i < 100; i++) {
        const probe = await runInNamespace(network, [
          "python3",
          "-c",
          `import socket; socket.create_connection(('127.0.0.1', ${port}))`,
        ]);
        if (probe.code === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error("the namespace's test service did not start");
    });

    afterAll(async () => {
      server?.kill("SIGKILL");
      connector?.close();
      await network?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("connects to a loopback service of the namespace and carries bytes both ways with half-close", async () => {
      const { socket, remoteAddress } = await connector.connect("127.0.0.1", port);
      expect(remoteAddress).toBe("127.0.0.1");
      const received = new Promise<string>((resolve) => {
        let text = "";
        socket.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        socket.on("end", () => resolve(text));
      });
      socket.resume();
      socket.end("hello");
      expect(await received).toBe("echo:hello");
      // A second connection reuses the helper.
      const again = await connector.connect("localhost", port);
      expect(again.remoteAddress).toBe("127.0.0.1");
      again.socket.destroy();
    });

    it("reports a refused port with the namespace's error", async () => {
      await expect(connector.connect("127.0.0.1", port + 1)).rejects.toThrow(/ECONNREFUSED/);
    });
  },
);
