import { create } from "@bufbuild/protobuf";
import type { Logger } from "@openshell/core";
import { ConfigChangedSchema, type GatewayMessage, GatewayMessageSchema } from "@openshell/proto";
import type { SupervisorSessionRegistry } from "./supervisor-session-registry.js";

/**
 * Push instead of poll: tells a sandbox's supervisor, on its live session, that its configuration
 * changed (`GatewayMessage.config_changed`), so it fetches GetSandboxConfig at once. A sandbox
 * without a session misses nothing: every new session gets one right after SessionAccepted.
 */
export class ConfigChangeNotifier {
  constructor(
    private readonly sessions: SupervisorSessionRegistry,
    /** The newest policy revision of a sandbox (0 = none). */
    private readonly latestPolicyVersion: (sandboxId: string) => Promise<number>,
    private readonly logger: Logger,
  ) {}

  async message(sandboxId: string): Promise<GatewayMessage> {
    return configChanged(await this.latestPolicyVersion(sandboxId));
  }

  /** One sandbox's policy or settings changed. */
  async sandboxChanged(sandboxId: string): Promise<void> {
    const session = this.sessions.get(sandboxId);
    if (!session) return;
    const message = await this.message(sandboxId);
    const sent = this.sessions.get(sandboxId)?.send(message) ?? false;
    this.logger.debug({ sandbox_id: sandboxId, sent }, "config_changed pushed to the supervisor");
  }

  /** A global policy or setting changed: every connected supervisor is told. */
  async allChanged(): Promise<void> {
    await Promise.all(this.sessions.sandboxIds().map((sandboxId) => this.sandboxChanged(sandboxId)));
  }
}

function configChanged(policyVersion: number): GatewayMessage {
  return create(GatewayMessageSchema, {
    payload: { case: "configChanged", value: create(ConfigChangedSchema, { policyVersion }) },
  });
}
