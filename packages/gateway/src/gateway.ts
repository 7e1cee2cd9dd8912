import http from "node:http";
import type { Logger } from "@openshell/core";
import { OpenShell } from "@openshell/proto";
import { SupervisorCredentials } from "./auth/supervisor-credentials.js";
import { ComputeRuntime } from "./compute/compute-runtime.js";
import { driverArgs } from "./compute/driver-args.js";
import { gatewayDirectory, resolveDriverCommand } from "./compute/driver-binary.js";
import { DriverProcess } from "./compute/driver-process.js";
import type { GatewayConfig } from "./config/gateway-config.js";
import { SandboxEventHub } from "./events/sandbox-event-hub.js";
import { GatewayServer, type RequestHandler } from "./http/gateway-server.js";
import { serveHealth } from "./http/health-routes.js";
import { isRawRelayRequest, serveRawRelayStream } from "./http/raw-relay-stream.js";
import { createRpcHandler } from "./http/rpc-handler.js";
import { SshConnectTunnel } from "./http/ssh-connect-tunnel.js";
import { SandboxRecords } from "./sandboxes/sandbox-records.js";
import { createOpenShellService } from "./services/openshell-service.js";
import { reapSshSessions, SSH_SESSION_REAP_INTERVAL_MS } from "./services/ssh-session-service.js";
import { ConfigChangeNotifier } from "./sessions/config-change-notifier.js";
import { SupervisorSessionRegistry } from "./sessions/supervisor-session-registry.js";
import { openStore } from "./store/open-store.js";
import type { Store } from "./store/store.js";

/** Largest request message accepted (upstream's 1 MiB gRPC decode limit). */
const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Everything one gateway instance owns; two can run in one process (no module state). */
export class Gateway {
  private store: Store | undefined;
  private driver: DriverProcess | undefined;
  private runtime: ComputeRuntime | undefined;
  private server: GatewayServer | undefined;
  private healthServer: http.Server | undefined;
  private readonly shutdown = new AbortController();
  private readonly sessions = new SupervisorSessionRegistry();
  private sshSessionReaper: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: GatewayConfig,
    private readonly logger: Logger,
  ) {}

  get port(): number {
    return this.server?.port ?? this.config.port;
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    const store = openStore(config.dbUrl, logger);
    this.store = store;
    logger.info({ store: store.description }, "store opened");

    const credentials = await SupervisorCredentials.load(store);
    const records = new SandboxRecords(store);
    const hub = new SandboxEventHub();
    const command = resolveDriverCommand(config.driver, {
      driverDir: config.driverDir,
      gatewayDir: gatewayDirectory(),
      path: process.env.PATH,
    });
    const driver = new DriverProcess({
      name: config.driver,
      command,
      extraArgs: driverArgs(config),
      stateDir: config.driverStateDir,
      logLevel: config.logLevel,
      logger,
      readyTimeoutMs: config.timings.driverReadyTimeoutMs,
      restartMaxBackoffMs: config.timings.driverRestartMaxBackoffMs,
    });
    this.driver = driver;
    await driver.start();

    const runtime = new ComputeRuntime({
      driver,
      records,
      hub,
      hasSession: (id) => this.sessions.has(id),
      issueSupervisorToken: (id) => credentials.issue(id),
      logger,
      reconcileIntervalMs: config.timings.reconcileIntervalMs,
      orphanGraceMs: config.timings.orphanGraceMs,
      watchRetryMs: config.timings.watchRetryMs,
    });
    this.runtime = runtime;
    await runtime.demoteStaleReady();
    runtime.start();

    const service = createOpenShellService({
      store,
      records,
      hub,
      runtime,
      sessions: this.sessions,
      credentials,
      configChanges: new ConfigChangeNotifier(
        this.sessions,
        async (sandboxId) => (await store.latestPolicyRevision(sandboxId))?.version ?? 0,
        logger,
      ),
      logger,
      namespace: config.sandboxNamespace,
      ssh: {
        gatewayHost: config.sshGatewayHost,
        gatewayPort: config.sshGatewayPort,
        gatewayScheme: config.tls ? "https" : "http",
        connectPath: config.sshConnectPath,
      },
    });
    const rpcHandler = createRpcHandler({
      implementations: [{ service: OpenShell, impl: service }],
      readMaxBytes: MAX_MESSAGE_BYTES,
      shutdownSignal: this.shutdown.signal,
      logger,
    });
    const readiness = () =>
      driver.isReady
        ? { ready: true }
        : { ready: false, reason: `compute driver '${config.driver}' is not ready` };
    const tunnel = new SshConnectTunnel({
      store,
      records,
      sessions: this.sessions,
      logger,
      connectPath: config.sshConnectPath,
    });
    this.sessions.startReaper();
    this.sshSessionReaper = setInterval(() => {
      reapSshSessions(store)
        .then((reaped) => reaped > 0 && logger.info({ reaped }, "expired or revoked SSH sessions deleted"))
        .catch((error: unknown) =>
          logger.warn({ err: (error as Error).message }, "SSH session reaper failed"),
        );
    }, SSH_SESSION_REAP_INTERVAL_MS);
    this.sshSessionReaper.unref();
    const handler: RequestHandler = (req, res) => {
      if (serveHealth(req, res, readiness)) return;
      if ("stream" in req && isRawRelayRequest(req.headers)) {
        serveRawRelayStream(req.stream, req.headers, { sessions: this.sessions, credentials, logger });
        return;
      }
      if (tunnel.handlesPath(req.url)) {
        res.statusCode = 405;
        res.setHeader("allow", "CONNECT");
        res.setHeader("content-type", "text/plain");
        res.end(`${req.method} is not allowed on ${config.sshConnectPath}; use CONNECT\n`);
        return;
      }
      rpcHandler(req, res);
    };

    this.server = new GatewayServer({
      port: config.port,
      host: config.bindAddress,
      tls: config.tls,
      handler,
      logger,
      onConnect: (req, socket, head) => tunnel.handle(req, socket, head),
    });
    await this.server.listen();
    if (config.healthPort !== 0) {
      const healthServer = http.createServer((req, res) => {
        if (!serveHealth(req, res, readiness)) {
          res.writeHead(404).end();
        }
      });
      await new Promise<void>((resolve) =>
        healthServer.listen(config.healthPort, config.bindAddress, resolve),
      );
      this.healthServer = healthServer;
    }
    logger.info(
      {
        address: `${config.bindAddress}:${this.port}`,
        tls: config.tls ? (config.tls.clientCa ? "mtls" : "tls") : "disabled",
        driver: config.driver,
        health_port: config.healthPort || undefined,
      },
      "Server listening",
    );
  }

  /** Drains: streams are told to end, connections get `drainTimeoutMs`, then the driver stops. */
  async stop(): Promise<void> {
    this.logger.info("shutting down");
    this.shutdown.abort();
    clearInterval(this.sshSessionReaper);
    this.sessions.shutdownAll();
    await this.server?.close(this.config.timings.drainTimeoutMs);
    await new Promise<void>((resolve) =>
      this.healthServer ? this.healthServer.close(() => resolve()) : resolve(),
    );
    await this.runtime?.stop();
    await this.driver?.stop();
    await this.store?.close();
    this.logger.info("stopped");
  }
}
