import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { createLogger, type Logger } from "@openshell/core";
import { EgressProxy, type TunnelStage } from "../src/network/egress-proxy.js";
import type { NetworkDecisions } from "../src/network/network-decisions.js";
import { SandboxNetwork } from "../src/network/sandbox-network.js";

const execFileAsync = promisify(execFile);

/** Namespaces need root, iproute2 and nftables; tests skip without them. */
export const canCreateNamespaces = (() => {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("/usr/sbin/ip", ["-V"], { stdio: "ignore" });
    execFileSync("/usr/sbin/nft", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** Parsed log lines of a test's logger. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = {
    write(text: string) {
      for (const line of text.split("\n")) if (line.trim()) lines.push(JSON.parse(line));
    },
  };
  return {
    logger: createLogger({ name: "network-test", level: "debug", destination }),
    lines,
  };
}

let counter = 0;

/** A namespace with a name and subnet of its own (tests run beside other helpers' namespaces). */
export async function createTestNetwork(
  logger: Logger,
  proxyPort = 3128,
  tlsDir?: string,
): Promise<SandboxNetwork> {
  counter++;
  const id = `${process.pid % 10_000}${counter}`;
  const subnet = 16 + ((process.pid * 7 + counter * 13) % 200);
  return SandboxNetwork.create({
    logger,
    name: `ostest-${id}`,
    hostAddress: `10.251.${subnet}.1`,
    sandboxAddress: `10.251.${subnet}.2`,
    proxyPort,
    vethHost: `osh${id}`.slice(0, 15),
    vethSandbox: `oss${id}`.slice(0, 15),
    tlsDir,
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command inside the namespace as `nobody` with the child environment. */
export async function runInNamespace(
  network: SandboxNetwork,
  command: string[],
  env: Record<string, string> = network.childEnvironment(),
): Promise<RunResult> {
  const started = performance.now();
  try {
    const { stdout, stderr } = await execFileAsync(
      "/usr/sbin/ip",
      [
        "netns",
        "exec",
        network.name,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        ...command,
      ],
      { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/tmp", ...env }, timeout: 20_000 },
    );
    return { code: 0, stdout, stderr, ms: performance.now() - started };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failure.code === "number" ? failure.code : -1,
      stdout: failure.stdout ?? "",
      stderr: failure.stderr ?? String(error),
      ms: performance.now() - started,
    };
  }
}

/**
 * The supervisor's egress proxy on `network`'s host side, as the supervisor wires it. `hosts`
 * stands in for DNS (a name it does not list fails as ENOTFOUND); `tunnelStage` as the supervisor's
 * TLS/L7 stage when given.
 */
export function startTestProxy(
  network: SandboxNetwork,
  logger: Logger,
  options: {
    decisions: () => NetworkDecisions | undefined;
    hosts: Record<string, string[]>;
    tunnelStage?: TunnelStage;
  },
): Promise<EgressProxy> {
  return EgressProxy.start({
    host: network.hostAddress,
    port: network.proxyPort,
    logger,
    decisions: options.decisions,
    procNetDir: () => network.procNetDir,
    resolve: async (host) => {
      const addresses = options.hosts[host];
      if (addresses) return addresses;
      throw new Error(`ENOTFOUND ${host}`);
    },
    tunnelStage: options.tunnelStage,
  });
}
