import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { waitFor } from "@openshell/testing/process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SANDBOX_TCP_EHASH_ENTRIES, SANDBOX_TCP_MAX_TIME_WAIT } from "../src/network/own-tcp-hash-table.js";
import type { SandboxNetwork } from "../src/network/sandbox-network.js";
import { canCreateNamespaces, captureLogger, createTestNetwork, runInNamespace } from "./network-harness.js";

describe.skipIf(!canCreateNamespaces)("sandbox network namespace (root, iproute2, nftables)", () => {
  const { logger, lines } = captureLogger();
  let network: SandboxNetwork;
  let proxyStandIn: Server;
  let other: Server;

  let hostChildEhash: string;

  beforeAll(async () => {
    hostChildEhash = readFileSync("/proc/sys/net/ipv4/tcp_child_ehash_entries", "utf8").trim();
    network = await createTestNetwork(logger);
    // Something listening on the proxy address and on another port of the host side.
    proxyStandIn = createServer((socket) => socket.end("proxy\n"));
    other = createServer((socket) => socket.end("other\n"));
    await new Promise<void>((resolve) =>
      proxyStandIn.listen(network.proxyPort, network.hostAddress, resolve),
    );
    await new Promise<void>((resolve) => other.listen(0, network.hostAddress, resolve));
  });

  afterAll(async () => {
    proxyStandIn?.close();
    other?.close();
    await network?.destroy();
    if (network) expect(existsSync(network.netnsPath)).toBe(false);
  });

  it("creates /run/netns/<name> and the child environment names the proxy as §3.7 lists", () => {
    expect(existsSync(network.netnsPath)).toBe(true);
    const proxy = `http://${network.hostAddress}:${network.proxyPort}`;
    expect(network.childEnvironment()).toEqual({
      ALL_PROXY: proxy,
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      grpc_proxy: proxy,
      NO_PROXY: "127.0.0.1,localhost,::1",
      no_proxy: "127.0.0.1,localhost,::1",
      NODE_USE_ENV_PROXY: "1",
    });
  });

  it("has its own small TCP hash table (the proxy reads net/tcp per connection) and leaves the host's sysctl as it was", async () => {
    const inside = await runInNamespace(network, ["cat", "/proc/sys/net/ipv4/tcp_ehash_entries"]);
    // Negative would mean "shares the initial namespace's table" (the kernel's sysctl documentation).
    expect(inside.stdout.trim()).toBe(String(SANDBOX_TCP_EHASH_ENTRIES));
    expect(readFileSync("/proc/sys/net/ipv4/tcp_child_ehash_entries", "utf8").trim()).toBe(hostChildEhash);
  });

  it("keeps few TIME_WAIT sockets (each is a line of net/tcp) and leaves the host's cap as it was", async () => {
    const host = readFileSync("/proc/sys/net/ipv4/tcp_max_tw_buckets", "utf8").trim();
    const inside = await runInNamespace(network, ["cat", "/proc/sys/net/ipv4/tcp_max_tw_buckets"]);
    expect(inside.stdout.trim()).toBe(String(SANDBOX_TCP_MAX_TIME_WAIT));
    expect(host).not.toBe(String(SANDBOX_TCP_MAX_TIME_WAIT));
  });

  it("reaches the proxy's address and port and loopback, nothing else", async () => {
    const proxy = await runInNamespace(network, [
      "python3",
      "-c",
      `import socket; print(socket.create_connection(('${network.hostAddress}', ${network.proxyPort}), timeout=5).recv(100).decode(), end='')`,
    ]);
    expect(proxy.stdout).toBe("proxy\n");
    const port = (other.address() as { port: number }).port;
    const blocked = await runInNamespace(network, [
      "curl",
      "-sS",
      "--noproxy",
      "*",
      "-m",
      "5",
      `http://${network.hostAddress}:${port}/`,
    ]);
    expect(blocked.code).toBe(7); // connection refused (TCP reset), not a timeout
    expect(blocked.ms).toBeLessThan(2000);
    const loopback = await runInNamespace(network, [
      "python3",
      "-c",
      "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); c=socket.create_connection(s.getsockname()); print('ok')",
    ]);
    expect(loopback.stdout.trim()).toBe("ok");
  });

  it("rejects a direct connect at once and logs it as a bypass attempt", async () => {
    const direct = await runInNamespace(network, [
      "python3",
      "-c",
      "import socket\ntry:\n socket.create_connection(('192.0.2.10', 8443), timeout=5)\nexcept OSError as e:\n print(type(e).__name__)",
    ]);
    expect(direct.stdout.trim()).toBe("ConnectionRefusedError");
    expect(direct.ms).toBeLessThan(2000);
    await waitFor(
      () =>
        lines.some((line) => String(line.msg).includes("bypass attempt tcp") && line.dst_ip === "192.0.2.10"),
      5000,
      "the bypass event",
    );
    const event = lines.find((line) => line.dst_ip === "192.0.2.10");
    expect(event?.msg).toMatch(
      /^NET:REFUSE \[MEDIUM\] BLOCKED bypass attempt tcp .*-> 192\.0\.2\.10:8443 rejected/,
    );
    expect(event?.dst_port).toBe(8443);
  });

  it("has no DNS: a UDP query is rejected (and traced) instead of hanging", async () => {
    const udp = await runInNamespace(network, [
      "python3",
      "-c",
      "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\ntry:\n s.connect(('192.0.2.53', 53)); s.send(b'x'); s.recv(10)\nexcept OSError as e:\n print(type(e).__name__)",
    ]);
    expect(["ConnectionRefusedError", "PermissionError"]).toContain(udp.stdout.trim());
    await waitFor(
      () => lines.some((line) => line.dst_ip === "192.0.2.53" && line.protocol === "udp"),
      5000,
      "the UDP bypass event",
    );
  });
});
