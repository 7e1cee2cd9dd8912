import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { shebangNodeFlags } from "@openshell/bootstrap";
import { signalIfRunning } from "@openshell/core";
import { OpenShell } from "@openshell/proto";
import { findRepoRoot, freePort, isAlive, pidsOf, stopChild, waitFor } from "./process.js";
import type { TestPki } from "./test-pki.js";

const REPO = findRepoRoot();
/** The built gateway; OPENSHELL_TEST_GATEWAY_BIN runs another build (benchmarks compare two). */
export const GATEWAY_BIN =
  process.env.OPENSHELL_TEST_GATEWAY_BIN ?? join(REPO, "packages", "gateway", "dist", "openshell-gateway.js");
/** Node flags for the gateway process alone (OPENSHELL_TEST_GATEWAY_NODE_ARGS, space-separated; benchmarks). */
const GATEWAY_NODE_ARGS = (process.env.OPENSHELL_TEST_GATEWAY_NODE_ARGS ?? "").split(" ").filter(Boolean);
export const DRIVER_DIR = join(REPO, "packages", "driver-test", "dist");
/** The built VM driver. */
export const VM_DRIVER_DIR = join(REPO, "packages", "driver-vm", "dist");

export interface GatewayTls {
  cert: string;
  key: string;
  clientCa?: string;
  /** What test clients present and trust. */
  client: { ca: string; cert?: string; key?: string };
}

function clientTlsOptions(tls: GatewayTls) {
  return {
    ca: readFileSync(tls.client.ca),
    ...(tls.client.cert ? { cert: readFileSync(tls.client.cert) } : {}),
    ...(tls.client.key ? { key: readFileSync(tls.client.key) } : {}),
  };
}

export interface RunningGateway {
  port: number;
  pid: number;
  stateDir: string;
  url: string;
  grpc: Client<typeof OpenShell>;
  connect: Client<typeof OpenShell>;
  output(): string;
  /** Sends `signal` and resolves with the exit code/signal. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function makeStateDir(): string {
  // Short on purpose: the driver's Unix socket lives inside.
  return mkdtempSync(join(tmpdir(), "osgw-"));
}

/**
 * Removes a test's state dir after ending whatever still runs from it (processes whose arguments
 * name it: all this test's): a test driver outlives a SIGKILLed gateway until it notices, and
 * would write its state into the dir again after the removal.
 */
export function removeStateDir(dir: string): void {
  const leftovers = pidsOf(/./, dir).filter((pid) => pid !== process.pid);
  for (const pid of leftovers) signalIfRunning(pid, "SIGKILL");
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < 5_000 && leftovers.some(isAlive); waited += 50) Atomics.wait(pause, 0, 0, 50);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Starts the real gateway binary with the test-only driver, bound to 127.0.0.1 unless told. */
export async function startGateway(options: {
  stateDir: string;
  /** Another local address (e.g. a private Docker network's gateway, where pods reach the host). */
  bindAddress?: string;
  dbUrl?: string;
  port?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** TLS (and mTLS when clientCa is set) instead of --disable-tls; clients present `client`. */
  tls?: GatewayTls;
  /** Another compute driver than the test-only one (e.g. vm). */
  driver?: { name: string; dir: string };
  startTimeoutMs?: number;
}): Promise<RunningGateway> {
  const port = options.port ?? (await freePort());
  const bindAddress = options.bindAddress ?? "127.0.0.1";
  const args = [
    ...shebangNodeFlags(GATEWAY_BIN),
    ...GATEWAY_NODE_ARGS,
    GATEWAY_BIN,
    "--drivers",
    options.driver?.name ?? "test",
    "--driver-dir",
    options.driver?.dir ?? DRIVER_DIR,
    "--driver-state-dir",
    join(options.stateDir, "drv"),
    ...(options.tls
      ? [
          "--tls-cert",
          options.tls.cert,
          "--tls-key",
          options.tls.key,
          ...(options.tls.clientCa ? ["--tls-client-ca", options.tls.clientCa] : ["--disable-gateway-auth"]),
        ]
      : ["--disable-tls"]),
    "--bind-address",
    bindAddress,
    "--port",
    String(port),
    "--db-url",
    options.dbUrl ?? `sqlite:${join(options.stateDir, "gateway.db")}`,
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, OPENSHELL_WATCH_RETRY_MS: "200", ...options.env },
  });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  await waitFor(
    () => output.includes('"msg":"Server listening"'),
    options.startTimeoutMs ?? 15_000,
    () => `gateway did not start:\n${output}`,
    child,
  );
  const url = `${options.tls ? "https" : "http"}://${bindAddress}:${port}`;
  const nodeOptions = options.tls ? clientTlsOptions(options.tls) : undefined;
  return {
    port,
    pid: child.pid as number,
    stateDir: options.stateDir,
    url,
    grpc: createClient(OpenShell, createGrpcTransport({ baseUrl: url, nodeOptions })),
    connect: createClient(
      OpenShell,
      createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions }),
    ),
    output: () => output,
    stop: (signal = "SIGTERM") => stopChild(child, signal),
  };
}

/**
 * The supervisor credential the gateway issued for a sandbox, read from the test driver's state
 * (a real driver hands it to the supervisor; tests that play the supervisor need it too).
 */
export function supervisorTokenOf(stateDir: string, sandboxId: string): string {
  const rows = JSON.parse(readFileSync(join(stateDir, "drv", "sandboxes.json"), "utf8")) as string[];
  for (const row of rows) {
    const sandbox = JSON.parse(row) as { id: string; spec?: { supervisorToken?: string } };
    if (sandbox.id === sandboxId && sandbox.spec?.supervisorToken) return sandbox.spec.supervisorToken;
  }
  throw new Error(`no supervisor token for ${sandboxId} in the test driver's state`);
}

/** Awaits an RPC that must fail and returns its status code and raw message. */
export async function rpcFailure(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
  } catch (error) {
    const failure = ConnectError.from(error);
    return { code: failure.code, message: failure.rawMessage };
  }
  throw new Error("expected the call to fail");
}

/**
 * The real gateway with the VM driver (microVM sandboxes under QEMU), its guests dialing it on
 * 127.0.0.1 (`--grpc-endpoint`). With `pki`: mTLS, the guests presenting the PKI's client
 * certificate.
 */
export async function startVmGateway(options: {
  stateDir: string;
  port?: number;
  memMib?: number;
  pki?: TestPki;
  /**
   * Extra environment for the gateway and its driver. VM templates are off unless given here
   * (OPENSHELL_VM_TEMPLATES=on): a template is one more VM booting in the background, which only
   * the tests of templates want.
   */
  env?: Record<string, string>;
}): Promise<RunningGateway> {
  const { stateDir, pki } = options;
  const port = options.port ?? (await freePort());
  return startGateway({
    stateDir,
    port,
    driver: { name: "vm", dir: VM_DRIVER_DIR },
    extraArgs: [
      "--grpc-endpoint",
      `${pki ? "https" : "http"}://127.0.0.1:${port}`,
      "--vm-mem-mib",
      String(options.memMib ?? 512),
      ...(pki ? ["--vm-tls-ca", pki.ca, "--vm-tls-cert", pki.clientCert, "--vm-tls-key", pki.clientKey] : []),
    ],
    tls: pki
      ? {
          cert: pki.serverCert,
          key: pki.serverKey,
          clientCa: pki.ca,
          client: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
        }
      : undefined,
    startTimeoutMs: 30_000,
    env: { OPENSHELL_VM_TEMPLATES: "off", ...options.env },
  });
}
