import http2 from "node:http2";
import { createLogger, type Logger } from "@openshell/core";
import { pino } from "pino";
import { parseSupervisorCommand } from "../config/supervisor-config.js";
import { LogShipper } from "../logs/log-shipper.js";
import { DEFAULT_TLS_DIR, SandboxCa } from "../network/sandbox-ca.js";
import { SandboxNetwork } from "../network/sandbox-network.js";
import { loadPolicyRules } from "../policy/policy-rules-loader.js";
import type { PreparedBeforeIdentity } from "../sandbox-supervisor.js";
import { GatewayConnection } from "../session/gateway-connection.js";
import { generateHostKey } from "../ssh/host-key.js";
import { loadSshServer } from "../ssh/sandbox-ssh-server.js";

/**
 * What a supervisor started in a VM template does before it waits for its identity
 * (architecture/vm-snapshots.md): everything that is the same in every sandbox, so that a sandbox
 * restored from the template does not pay for it under TCG, where each code path's first run is
 * slow. Nothing here learns anything about a sandbox; no key made here is kept.
 *
 * - Loads ssh2's server and the policy code (a quarter of a restored supervisor's CPU until its
 *   session in a V8 tick profile).
 * - Makes the sandbox network namespace: its name, addresses and rules are the same in every
 *   sandbox, and its four `ip`/`nft` processes were the longest part of the restored start (1.3 s).
 * - Runs code every start runs once, as far as it goes without a sandbox: the flag parsing; the first
 *   gateway calls (HTTP/2 client, Connect, protobuf; a unary call and a log batch) against an HTTP/2
 *   server of its own on loopback; a throwaway sandbox CA (key generation, signature, DER and PEM)
 *   and SSH host key (ssh2 parses it). Under TCG the restored supervisor's first answer from the
 *   gateway came 0.3 s sooner and its CA 0.17 s sooner. The throwaway keys draw from OpenSSL's DRBG,
 *   which reseeds itself after the restore (the template's clock reads 2100, later than any
 *   restored time: see the init), and the sandbox's own keys are made after that.
 *
 * A failure is logged to the console and changes nothing else: the supervisor makes what is
 * missing after its identity (and fails closed there if it still cannot).
 */
export async function prepareInTemplate(): Promise<PreparedBeforeIdentity> {
  const logger = createLogger({
    name: "openshell-sandbox",
    level: "info",
    destination: pino.destination({ dest: 1, sync: true }),
  });
  loadSshServer();
  await loadPolicyRules();
  const network = await SandboxNetwork.create({ logger, tlsDir: DEFAULT_TLS_DIR }).catch((error: Error) => {
    logger.warn(
      `network namespace not made in the template (made after the identity instead): ${error.message}`,
    );
    return undefined;
  });
  await warmUp(logger);
  return { network };
}

async function warmUp(logger: Logger): Promise<void> {
  const started = performance.now();
  try {
    try {
      parseSupervisorCommand(process.argv.slice(2), {}); // Node's parseArgs and our flags, compiled
    } catch {
      // no sandbox environment yet: expected
    }
    await callOwnServer();
    await SandboxCa.create("OpenShell template warm-up (discarded)");
    const SshServer = loadSshServer();
    new SshServer({ hostKeys: [generateHostKey()], ident: "OpenShell" }); // key parsing, discarded
    logger.info(`template warm-up done in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    logger.warn(`template warm-up failed (the restored start is slower): ${(error as Error).message}`);
  }
}

/**
 * One GetSandboxConfig and one log batch (PushSandboxLogs, a client stream) through a
 * GatewayConnection to a loopback server that answers UNIMPLEMENTED.
 */
async function callOwnServer(): Promise<void> {
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc", "grpc-status": "12" },
      { endStream: true },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  const connection = new GatewayConnection(new URL(`http://127.0.0.1:${port}`), undefined);
  try {
    await connection.client.getSandboxConfig({ sandboxId: "template-warm-up" }).then(
      () => {
        throw new Error("the warm-up server answered a call it cannot serve");
      },
      () => undefined, // UNIMPLEMENTED, as expected
    );
    const shipper = new LogShipper("template-warm-up", {});
    shipper.write(JSON.stringify({ level: 30, time: Date.now(), msg: "template warm-up" }));
    shipper.setClient(connection.client);
    await shipper.flush(); // fails (UNIMPLEMENTED) and keeps the line: dropped with the shipper
    shipper.setClient(undefined);
  } finally {
    connection.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
