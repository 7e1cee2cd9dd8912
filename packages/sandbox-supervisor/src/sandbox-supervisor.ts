import { emitOcsf, type Logger } from "@openshell/core";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import type { LogShipper } from "./logs/log-shipper.js";
import { ConfigSync } from "./policy/config-sync.js";
import { PolicyState } from "./policy/policy-state.js";
import { SupervisorSession } from "./session/supervisor-session.js";
import { SandboxSshServer } from "./ssh/index.js";

/**
 * Wires the supervisor's parts: SSH server on the Unix socket, gateway session, log shipping, and
 * the policy state kept in line with the gateway (nothing enforces it yet).
 */
export class SandboxSupervisor {
  private sshServer: SandboxSshServer | undefined;
  private session: SupervisorSession | undefined;
  private configSync: ConfigSync | undefined;
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
  ) {}

  get sessionConnected(): boolean {
    return this.session?.connected ?? false;
  }

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
    this.sshServer = await SandboxSshServer.start({
      socketPath: config.sshSocketPath,
      runAsUser: config.runAsUser,
      workdir: config.workdir,
      env: { OPENSHELL_SANDBOX_NAME: config.sandboxName },
      logger,
      confinement: config.testOnlyNoIsolation
        ? undefined
        : {
            launcherPath: config.launcherPath,
            policyState: this.policyState,
            netnsPath: () => this.childNetnsPath,
          },
    });
    if (!config.testOnlyNoIsolation) {
      // Fail closed, and say so now rather than at the first child.
      const problem = this.sshServer.confinementProblem();
      if (problem) {
        emitOcsf(logger, {
          class: "FINDING",
          activity: "BLOCKED",
          severity: "CRITICAL",
          disposition: "BLOCKED",
          message: `platform-sandbox-unavailable: every shell, command and sftp session will be refused: ${problem}`,
          fields: { finding: "platform-sandbox-unavailable", launcher: config.launcherPath },
        });
      }
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
    this.session = new SupervisorSession({
      sandboxId: config.sandboxId,
      endpoint: config.endpoint,
      supervisorToken: config.supervisorToken,
      tls: config.tls,
      keepalive: config.keepalive,
      sshSocketPath: config.sshSocketPath,
      logger,
      onConnection: (connection) => {
        this.logShipper?.setClient(connection?.client);
        configSync.setClient(connection?.client);
        if (connection) void configSync.request("session");
      },
      onConfigChanged: () => void configSync.request("pushed"),
    });
    configSync.start();
    this.session.start();
  }

  async stop(): Promise<void> {
    await this.configSync?.stop();
    await this.session?.stop();
    await this.logShipper?.flush();
    await this.sshServer?.close();
    emitOcsf(this.logger, { class: "LIFECYCLE", activity: "STOP", message: "openshell-sandbox stopped" });
  }
}
