import { emitOcsf, type Logger } from "@openshell/core";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import type { LogShipper } from "./logs/log-shipper.js";
import { SupervisorSession } from "./session/supervisor-session.js";
import { SandboxSshServer } from "./ssh/index.js";

/** Wires the supervisor's parts: SSH server on the Unix socket, gateway session, log shipping. */
export class SandboxSupervisor {
  private sshServer: SandboxSshServer | undefined;
  private session: SupervisorSession | undefined;

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
    this.sshServer = await SandboxSshServer.start({
      socketPath: config.sshSocketPath,
      runAsUser: config.runAsUser,
      workdir: config.workdir,
      env: { OPENSHELL_SANDBOX_NAME: config.sandboxName },
      logger,
    });
    this.session = new SupervisorSession({
      sandboxId: config.sandboxId,
      endpoint: config.endpoint,
      supervisorToken: config.supervisorToken,
      tls: config.tls,
      keepalive: config.keepalive,
      sshSocketPath: config.sshSocketPath,
      logger,
      onConnection: (connection) => this.logShipper?.setClient(connection?.client),
    });
    this.session.start();
  }

  async stop(): Promise<void> {
    await this.session?.stop();
    await this.logShipper?.flush();
    await this.sshServer?.close();
    emitOcsf(this.logger, { class: "LIFECYCLE", activity: "STOP", message: "openshell-sandbox stopped" });
  }
}
