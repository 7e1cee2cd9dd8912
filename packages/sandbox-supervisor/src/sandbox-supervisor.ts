import { dirname, join } from "node:path";
import { Backoff, emitOcsf, type Logger, OpenShellError, sleep } from "@openshell/core";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import { launcherProblem } from "./confinement/child-confiner.js";
import type { LogShipper } from "./logs/log-shipper.js";
import { EgressProxy } from "./network/egress-proxy.js";
import { HostAliasOpener } from "./network/host-alias.js";
import { createL7Stage } from "./network/l7-stage.js";
import { NetnsConnector } from "./network/netns-connector.js";
import { DEFAULT_TLS_DIR, SandboxCa } from "./network/sandbox-ca.js";
import { SandboxNetwork } from "./network/sandbox-network.js";
import { ConfigSync } from "./policy/config-sync.js";
import { PolicyState } from "./policy/policy-state.js";
import { GatewayConnection } from "./session/gateway-connection.js";
import { RECONNECT_INITIAL_MS, RECONNECT_MAX_MS, SupervisorSession } from "./session/supervisor-session.js";
import { SandboxSshServer } from "./ssh/index.js";
import { type WorkloadExit, WorkloadProcess } from "./workload/workload-process.js";

/** What a supervisor waiting in a VM template made before it knew its sandbox (main.ts). */
export interface PreparedBeforeIdentity {
  /** The sandbox network namespace (its name, addresses and rules are the same in every sandbox). */
  network?: SandboxNetwork;
}

/**
 * Wires the supervisor's parts: the policy state kept in line with the gateway, the sandbox network
 * namespace and its egress proxy, the SSH server on the Unix socket whose children are confined,
 * the gateway session, log shipping and the entrypoint workload.
 */
export class SandboxSupervisor {
  private sshServer: SandboxSshServer | undefined;
  private session: SupervisorSession | undefined;
  private configSync: ConfigSync | undefined;
  private network: SandboxNetwork | undefined;
  private proxy: EgressProxy | undefined;
  private netnsConnector: NetnsConnector | undefined;
  /** The start-up sync's connection until the session takes it over. */
  private startupConnection: GatewayConnection | undefined;
  private readonly stopping = new AbortController();
  /** The workload's start (its spawn may still be in progress when a stop comes). */
  private workloadStart: Promise<WorkloadProcess | undefined> | undefined;
  /** The workload's pid once it runs (the proxy's process identity may bind to it). */
  workloadPid: number | undefined = undefined;
  /** The installed policy and settings (the enforcement issue consumes it). */
  readonly policyState = new PolicyState();
  /**
   * The network namespace every child enters through the launcher (`--netns`), set once the
   * sandbox network exists (`SandboxNetwork.netnsPath`); undefined: the supervisor's own.
   */
  childNetnsPath: string | undefined = undefined;

  constructor(
    private readonly config: SupervisorConfig,
    private readonly logger: Logger,
    private readonly logShipper?: LogShipper,
    private readonly prepared: PreparedBeforeIdentity = {},
  ) {}

  /** Drops the gateway connection and dials again at once (after a VM snapshot was restored). */
  reconnectNow(): void {
    this.session?.reconnectNow();
  }

  get sessionConnected(): boolean {
    return this.session?.connected ?? false;
  }

  /**
   * Start-up (§3.3): the start-up policy sync (GetSandboxConfig, and when the gateway has none the
   * image's policy synced back, baseline paths added), the network namespace with its proxy and the
   * SSH server all complete before the session starts. The session makes the sandbox Ready and is
   * the only way a child can start, so no child runs before its policy and its network are in
   * place. (The sync used to run after SessionAccepted: a `policy set` right after Ready was then
   * superseded by the supervisor's own start-up version.)
   */
  async start(): Promise<void> {
    const { config, logger } = this;
    emitOcsf(logger, {
      class: "LIFECYCLE",
      activity: "START",
      message: "openshell-sandbox starting",
      fields: {
        sandbox_id: config.sandboxId,
        sandbox: config.sandboxName,
        endpoint: config.endpoint.origin,
        keepalive_ms: config.keepalive,
      },
    });
    if (config.testOnlyNoIsolation) {
      logger.warn(
        "TEST ONLY: --test-only-no-isolation: children run without confinement or network isolation",
      );
    }
    const configSync = new ConfigSync({
      sandboxId: config.sandboxId,
      sandboxName: config.sandboxName,
      supervisorToken: config.supervisorToken,
      state: this.policyState,
      logger,
      pollIntervalMs: config.policyPollIntervalSecs * 1000,
      discoveryRoot: config.policyDiscoveryRoot,
    });
    this.configSync = configSync;
    // The connection is handed to the session afterwards.
    const connection = new GatewayConnection(config.endpoint, config.tls, config.keepalive);
    this.startupConnection = connection;
    this.logShipper?.setClient(connection.client);
    configSync.setClient(connection.client);
    // Policy, network and SSH server are set up side by side (each waits on the gateway or on
    // processes it spawns: one after the other cost seconds in a VM under TCG). The session, which
    // makes the sandbox Ready and is the only way a child can start, waits for all three.
    const isolated = !config.testOnlyNoIsolation;
    if (!isolated) await this.prepared.network?.destroy();
    if (isolated) {
      // Fail closed before anything starts: without the launcher no child can ever run.
      const missing = launcherProblem(config.launcherPath);
      if (missing) this.platformSandboxUnavailable(missing);
      this.netnsConnector = new NetnsConnector(
        SandboxNetwork.defaultName,
        join(dirname(config.sshSocketPath), "netns-connect.sock"),
        logger,
      );
    }
    const startedAt = performance.now();
    const timed = async (task: Promise<void> | undefined) => {
      await task;
      return Math.round(performance.now() - startedAt);
    };
    const [policyMs, networkMs, sshMs] = await Promise.all([
      timed(this.startupPolicySync(configSync)),
      timed(isolated ? this.startNetwork() : undefined),
      timed(this.startSshServer(isolated ? SandboxNetwork.defaultChildEnvironment() : {})),
    ]);
    const sshServer = this.sshServer;
    if (this.stopping.signal.aborted || !sshServer) return;
    if (isolated) {
      // Fail closed: the installed policy's confinement is checked (`openshell-launch --check`)
      // before the sandbox can be Ready; a sandbox where no child could run goes to ERROR instead.
      const problem = await sshServer.confinementProblem();
      if (problem) this.platformSandboxUnavailable(problem);
    }
    // Where a slow start went (each part runs beside the others, timed from the start).
    const totalMs = await timed(undefined);
    logger.info(
      { policy_ms: policyMs, network_ms: networkMs, ssh_ms: sshMs, total_ms: totalMs },
      `start-up done in ${totalMs} ms (policy ${policyMs}, network ${networkMs}, SSH server ${sshMs}, then the confinement check); opening the gateway session`,
    );
    this.session = new SupervisorSession({
      sandboxId: config.sandboxId,
      endpoint: config.endpoint,
      supervisorToken: config.supervisorToken,
      tls: config.tls,
      keepalive: config.keepalive,
      connectSsh: () => sshServer.connectInProcess(),
      logger,
      connection,
      onConnection: (live) => {
        this.logShipper?.setClient(live?.client);
        configSync.setClient(live?.client);
        if (live) void configSync.request("session");
      },
      onConfigChanged: () => void configSync.request("pushed"),
    });
    this.startupConnection = undefined;
    configSync.start();
    this.session.start();
    // §3.3 step 14: the workload, after the session task, confined like every SSH child.
    this.workloadStart = this.startWorkload(sshServer);
    await this.workloadStart;
  }

  /** Settles when the workload has exited (undefined when it never started, e.g. a stop came first). */
  async workloadExited(): Promise<WorkloadExit | undefined> {
    const workload = await this.workloadStart?.catch(() => undefined);
    return workload?.exited;
  }

  private async startWorkload(sshServer: SandboxSshServer): Promise<WorkloadProcess | undefined> {
    const { config, logger } = this;
    if (this.stopping.signal.aborted) return undefined;
    const workload = await WorkloadProcess.start({
      command: config.command,
      workdir: config.workdir,
      ...sshServer.children,
      timeoutSecs: config.timeoutSecs,
      interactive: config.interactive,
      logger,
    });
    this.workloadPid = workload.pid;
    // A stop that came while it was being spawned.
    if (this.stopping.signal.aborted) void workload.terminate();
    return workload;
  }

  /**
   * The fatal finding (shipped by `main` before it exits non-zero, like a network that cannot be
   * set up): children cannot be confined, so none may run and the sandbox must not look Ready.
   */
  private platformSandboxUnavailable(reason: string): never {
    const { config, logger } = this;
    emitOcsf(logger, {
      class: "FINDING",
      activity: "BLOCKED",
      severity: "FATAL",
      disposition: "BLOCKED",
      message: `platform-sandbox-unavailable: children cannot be confined, the supervisor exits: ${reason}`,
      fields: { finding: "platform-sandbox-unavailable", launcher: config.launcherPath, reason },
    });
    throw new OpenShellError(
      "failed_precondition",
      `platform sandbox unavailable and the sandbox requires confinement: ${reason}`,
    );
  }

  /** The namespace and the proxy: every child's only way out. Fails closed (the supervisor exits). */
  private async startNetwork(): Promise<void> {
    const { logger } = this;
    // The namespace's ip/nft processes run while the CA is made (key and signature in the
    // threadpool). The CA exists before any child starts (Node reads NODE_EXTRA_CA_CERTS at its
    // start); its key stays in this process.
    const prepared = this.prepared.network;
    prepared?.reportTo(logger);
    const creating = prepared
      ? Promise.resolve(prepared)
      : SandboxNetwork.create({ logger, tlsDir: DEFAULT_TLS_DIR });
    creating.catch(() => undefined); // awaited below; not unhandled while the CA is made
    let ca: SandboxCa;
    try {
      const started = performance.now();
      ca = await SandboxCa.create();
      const made = performance.now();
      ca.writeFiles(DEFAULT_TLS_DIR);
      emitOcsf(logger, {
        class: "CONFIG",
        activity: "LOADED",
        message: `sandbox CA created (${(made - started).toFixed(1)} ms), ${DEFAULT_TLS_DIR}/openshell-ca.pem and ca-bundle.pem written (${(performance.now() - made).toFixed(1)} ms)`,
        fields: { tls_dir: DEFAULT_TLS_DIR },
      });
    } catch (error) {
      // A namespace failure is the first reason (it is thrown from here when there is one).
      await (await creating).destroy();
      throw new Error(`sandbox CA could not be written to ${DEFAULT_TLS_DIR}: ${(error as Error).message}`);
    }
    const network = await creating;
    this.network = network;
    const hostAlias = new HostAliasOpener(logger);
    this.proxy = await EgressProxy.start({
      host: network.hostAddress,
      port: network.proxyPort,
      logger,
      decisions: () => this.policyState.policy?.network,
      procNetDir: () => network.procNetDir,
      beforeDial: (address, port) => hostAlias.open(address, port),
      tunnelStage: createL7Stage({ logger, ca }),
    });
    this.childNetnsPath = network.netnsPath;
  }

  private async startSshServer(childEnv: Record<string, string>): Promise<void> {
    const { config, logger } = this;
    this.sshServer = await SandboxSshServer.start({
      socketPath: config.sshSocketPath,
      runAsUser: config.runAsUser,
      workdir: config.workdir,
      env: { OPENSHELL_SANDBOX_NAME: config.sandboxName, ...childEnv },
      logger,
      connectLoopback: this.netnsConnector
        ? (host, port) => (this.netnsConnector as NetnsConnector).connect(host, port)
        : undefined,
      confinement: config.testOnlyNoIsolation
        ? undefined
        : {
            launcherPath: config.launcherPath,
            policyState: this.policyState,
            netnsPath: () => this.childNetnsPath,
          },
    });
  }

  /** Syncs until the gateway's config is applied, retrying (1 s doubling to 30 s) while it fails. */
  private async startupPolicySync(configSync: ConfigSync): Promise<void> {
    const backoff = new Backoff(RECONNECT_INITIAL_MS, RECONNECT_MAX_MS);
    for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
      await configSync.request("startup");
      if (this.policyState.configRevision !== undefined) return;
      const delayMs = backoff.next();
      emitOcsf(this.logger, {
        class: "NET",
        activity: "FAIL",
        severity: "MEDIUM",
        // The VM driver's boot-console watch reads this line (GatewayUnreachable).
        message: `start-up policy sync failed, retrying in ${delayMs} ms (attempt ${attempt}): ${configSync.lastError ?? "the gateway's config is not applied yet"}`,
        fields: { attempt, retry_ms: delayMs },
      });
      await sleep(delayMs, this.stopping.signal);
    }
  }

  /** Stops the workload first (SIGTERM, SIGKILL after a grace period), then everything else. */
  async stop(): Promise<void> {
    this.stopping.abort();
    const workload = await this.workloadStart?.catch(() => undefined);
    await workload?.terminate();
    // While the session's connection is still up: the workload's last lines and its end.
    await this.logShipper?.drain();
    await this.configSync?.stop();
    await this.session?.stop();
    await this.logShipper?.flush();
    this.startupConnection?.close();
    await this.sshServer?.close();
    this.netnsConnector?.close();
    await this.proxy?.close();
    await this.network?.destroy();
    emitOcsf(this.logger, { class: "LIFECYCLE", activity: "STOP", message: "openshell-sandbox stopped" });
  }
}
