import { create } from "@bufbuild/protobuf";
import type { CallOptions, Client } from "@connectrpc/connect";
import { emitOcsf, type Logger, OpenShellError } from "@openshell/core";
import { type OpenShell, PolicyStatus, sandboxv1 } from "@openshell/proto";
import type { DiscoveredPolicy } from "./policy-discovery.js";
import { loadPolicyRules, type PolicyRules } from "./policy-rules-loader.js";
import { type PolicyState, settingText } from "./policy-state.js";

/** The gateway calls the sync makes (a connect client of the supervisor's connection has them). */
export type ConfigSyncClient = Pick<
  Client<typeof OpenShell>,
  "getSandboxConfig" | "reportPolicyStatus" | "updateConfig"
>;

/** Why a sync runs (logged). */
export type SyncReason = "startup" | "session" | "pushed" | "poll";

/** A call that hangs (half-dead connection) must not block every later sync. */
const RPC_TIMEOUT_MS = 15_000;

export interface ConfigSyncOptions {
  sandboxId: string;
  /** UpdateConfig addresses the sandbox by name. */
  sandboxName: string;
  supervisorToken: string;
  state: PolicyState;
  logger: Logger;
  /** Fallback poll; changes normally arrive as config_changed on the session. */
  pollIntervalMs: number;
  /** Directory under which etc/openshell/policy.yaml is looked for ("/" in a sandbox). */
  discoveryRoot: string;
  /** Replaces the disk discovery (unit tests). */
  discover?: (root: string, logger: Logger) => Promise<DiscoveredPolicy>;
}

interface StatusReport {
  version: number;
  status: PolicyStatus.LOADED | PolicyStatus.FAILED;
  loadError: string;
}

/**
 * Keeps the supervisor's PolicyState in line with the gateway (§3.4, §3.9): fetches
 * GetSandboxConfig when the session is accepted, on every config_changed and on a slow poll; skips
 * an unchanged config_revision; validates a changed policy and installs it (else keeps the
 * last-known-good) and reports LOADED/FAILED for the sandbox's own revisions. Requests that arrive
 * while a sync runs are coalesced into one more sync after it. When the gateway holds no policy,
 * the image's policy file (else the restrictive default) is installed and synced back with
 * UpdateConfig. No failure here stops the supervisor: it is logged and retried on the next sync.
 */
export class ConfigSync {
  private client: ConfigSyncClient | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopped = new AbortController();
  private discovered: Promise<DiscoveredPolicy> | undefined;
  /** Upstream enriches the gateway's policy with baseline paths once, at start. */
  private startupEnrichmentDone = false;
  /** A status the gateway has not acknowledged yet; sent before anything else on the next sync. */
  private pendingReport: StatusReport | undefined;
  /** The revision last refused, so a settings-only change does not refuse (and report) it again. */
  private lastRefused: { version: number; hash: string } | undefined;
  private rules: PolicyRules | undefined;
  /** GetSandboxConfig calls made (tests observe coalescing with it). */
  fetches = 0;
  /** Why the last sync failed (undefined: it did not). */
  lastError: string | undefined;

  constructor(private readonly options: ConfigSyncOptions) {}

  /** The client of the live connection (undefined while disconnected: syncs then do nothing). */
  setClient(client: ConfigSyncClient | undefined): void {
    this.client = client;
  }

  /** Starts the fallback poll. */
  start(): void {
    this.timer ??= setInterval(() => void this.request("poll"), this.options.pollIntervalMs).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped.abort();
    await this.running;
  }

  /**
   * Asks for a sync. While one runs, any number of requests make exactly one more after it.
   * Resolves once a sync that started after this request has finished.
   */
  request(reason: SyncReason): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        let next: SyncReason = reason;
        do {
          this.again = false;
          await this.syncOnce(next);
          next = "pushed";
        } while (this.again && !this.stopped.signal.aborted);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** Set by syncOnce before anything that needs it runs. */
  private get loadedRules(): PolicyRules {
    if (!this.rules) throw new OpenShellError("internal", "policy rules used before they were loaded");
    return this.rules;
  }

  private get callOptions(): CallOptions {
    return {
      headers: { authorization: `Bearer ${this.options.supervisorToken}` },
      signal: this.stopped.signal,
      timeoutMs: RPC_TIMEOUT_MS,
    };
  }

  private async syncOnce(reason: SyncReason): Promise<void> {
    const client = this.client;
    if (!client || this.stopped.signal.aborted) return;
    const { logger, sandboxId } = this.options;
    try {
      if (!this.rules) {
        const started = performance.now();
        this.rules = await loadPolicyRules();
        logger.debug({ load_ms: Math.round(performance.now() - started) }, "policy rules loaded");
      }
      await this.flushReport(client);
      this.fetches++;
      let config = await client.getSandboxConfig({ sandboxId }, this.callOptions);
      logger.debug(
        {
          reason,
          config_revision: config.configRevision.toString(),
          policy_version: config.version,
          policy_source: sandboxv1.PolicySource[config.policySource],
        },
        "sandbox config fetched",
      );
      if (config.version === 0 && !config.policy) {
        const synced = await this.adoptLocalPolicy(client);
        if (!synced) return;
        config = synced;
      } else if (!this.startupEnrichmentDone) {
        config = await this.enrichAtStartup(client, config);
      }
      this.apply(config);
      await this.flushReport(client);
      this.lastError = undefined;
    } catch (error) {
      if (this.stopped.signal.aborted) return;
      const failure = OpenShellError.from(error);
      this.lastError = failure.message;
      logger.warn(
        { reason, code: failure.code },
        `policy sync failed, retrying on the next change or poll: ${failure.message}`,
      );
    }
  }

  /**
   * The gateway holds no policy: install the image's (or the default) locally right away, then
   * store it on the gateway (which makes it revision 1) and fetch again.
   */
  private async adoptLocalPolicy(client: ConfigSyncClient) {
    const { state, logger, discoveryRoot, sandboxName } = this.options;
    const rules = this.loadedRules;
    this.discovered ??= (this.options.discover ?? rules.discoverPolicy)(discoveryRoot, logger);
    const local = await this.discovered;
    if (!state.policy) {
      const installed = state.install({
        policy: local.policy,
        version: 0,
        hash: rules.deterministicPolicyHash(local.policy),
        source: sandboxv1.PolicySource.UNSPECIFIED,
        origin: local.origin,
        network: this.compileNetwork(local.policy, 0).network,
      });
      this.emitLoaded(installed.version, installed.hash, `${local.origin} policy installed`);
    }
    await client.updateConfig({ name: sandboxName, policy: local.policy }, this.callOptions);
    emitOcsf(logger, {
      class: "CONFIG",
      activity: "SYNCED",
      message: `${local.origin === "disk" ? "discovered" : "default"} policy stored on the gateway`,
      fields: { policy_origin: local.origin, policy_path: local.path },
    });
    this.fetches++;
    const config = await client.getSandboxConfig({ sandboxId: this.options.sandboxId }, this.callOptions);
    if (config.version === 0 && !config.policy) {
      logger.warn(
        "the gateway stored the discovered policy but still returns none; retrying on the next sync",
      );
      return undefined;
    }
    return config;
  }

  /** §3.4: baseline paths are added to the sandbox's policy at start and the result synced back. */
  private async enrichAtStartup(client: ConfigSyncClient, config: sandboxv1.GetSandboxConfigResponse) {
    this.startupEnrichmentDone = true;
    if (!config.policy || config.policySource !== sandboxv1.PolicySource.SANDBOX) return config;
    const enriched = create(sandboxv1.SandboxPolicySchema, config.policy);
    const { enrichBaselinePaths, imagePathExists } = this.loadedRules;
    const pathExists = imagePathExists(this.options.discoveryRoot);
    if (!enrichBaselinePaths(enriched, { pathExists })) return config;
    try {
      await client.updateConfig({ name: this.options.sandboxName, policy: enriched }, this.callOptions);
      emitOcsf(this.options.logger, {
        class: "CONFIG",
        activity: "SYNCED",
        message: "baseline paths added to the sandbox's policy and stored on the gateway",
        fields: { policy_version: config.version },
      });
      this.fetches++;
      return await client.getSandboxConfig({ sandboxId: this.options.sandboxId }, this.callOptions);
    } catch (error) {
      // Non-fatal, as upstream: the gateway's policy is loaded as it is.
      this.options.logger.warn(
        { code: OpenShellError.from(error).code },
        `could not store the policy with its baseline paths: ${OpenShellError.from(error).message}`,
      );
      return config;
    }
  }

  private apply(config: sandboxv1.GetSandboxConfigResponse): void {
    const { state, logger } = this.options;
    if (state.configRevision === config.configRevision && state.policy?.origin === "gateway") return;
    for (const change of state.replaceSettings(config.settings)) {
      emitOcsf(logger, {
        class: "CONFIG",
        activity: "UPDATE",
        message: `setting ${change.key}: ${settingText(change.before)} -> ${settingText(change.after)}`,
        fields: { setting_key: change.key, setting_scope: sandboxv1.SettingScope[change.scope] },
      });
    }
    const policy = config.policy;
    if (policy) this.applyPolicy(config, policy);
    state.markRevision(config.configRevision);
  }

  private applyPolicy(config: sandboxv1.GetSandboxConfigResponse, policy: sandboxv1.SandboxPolicy): void {
    const { state, logger } = this.options;
    const { version, policyHash: hash, policySource: source } = config;
    const installed = state.policy;
    const current =
      installed?.origin === "gateway" &&
      installed.hash === hash &&
      installed.version === version &&
      installed.source === source;
    const refusedBefore = this.lastRefused?.version === version && this.lastRefused.hash === hash;
    if (current || refusedBefore) return;
    // Upstream reports only the sandbox's own revisions: a global policy has no sandbox revision.
    const reportable = version > 0 && source === sandboxv1.PolicySource.SANDBOX;
    const { errors, warnings } = this.loadedRules.policyProblems(policy);
    for (const warning of warnings) logger.warn({ policy_version: version }, `policy warning: ${warning}`);
    // The proxy decides with the compiled form: a policy that does not compile is refused like one
    // that fails validation, and the last-known-good (with its compiled form) stays.
    const compiled = errors.length === 0 ? this.compileNetwork(policy, version) : undefined;
    if (compiled?.error) errors.push(compiled.error);
    if (errors.length === 0) {
      state.install({ policy, version, hash, source, origin: "gateway", network: compiled?.network });
      this.lastRefused = undefined;
      this.emitLoaded(version, hash, "policy loaded", source);
      if (reportable) this.pendingReport = { version, status: PolicyStatus.LOADED, loadError: "" };
      return;
    }
    const loadError = errors.join("; ");
    this.lastRefused = { version, hash };
    emitOcsf(logger, {
      class: "CONFIG",
      activity: "FAILED",
      severity: "MEDIUM",
      message: `policy version ${version} refused, keeping ${installed ? `version ${installed.version}` : "none"}: ${loadError} [version:v${version} hash:sha256:${hash.slice(0, 12)}]`,
      fields: {
        policy_version: version,
        policy_hash: hash,
        kept_version: installed?.version,
        policy_source: sandboxv1.PolicySource[source],
      },
    });
    if (reportable) this.pendingReport = { version, status: PolicyStatus.FAILED, loadError };
  }

  /** The network part compiled for the proxy, or why it does not compile. */
  private compileNetwork(policy: sandboxv1.SandboxPolicy, version: number) {
    try {
      const network = this.loadedRules.createNetworkDecisions(policy);
      for (const warning of network.warnings) {
        this.options.logger.warn({ policy_version: version }, `network policy warning: ${warning}`);
      }
      return { network, error: undefined };
    } catch (error) {
      const message = `network policy does not compile: ${OpenShellError.from(error).message}`;
      this.options.logger.warn({ policy_version: version }, message);
      return { network: undefined, error: message };
    }
  }

  private emitLoaded(
    version: number,
    hash: string,
    what: string,
    source = sandboxv1.PolicySource.UNSPECIFIED,
  ): void {
    emitOcsf(this.options.logger, {
      class: "CONFIG",
      activity: "LOADED",
      message: `${what} [version:v${version} hash:sha256:${hash.slice(0, 12)}]`,
      fields: { policy_version: version, policy_hash: hash, policy_source: sandboxv1.PolicySource[source] },
    });
  }

  private async flushReport(client: ConfigSyncClient): Promise<void> {
    const report = this.pendingReport;
    if (!report) return;
    try {
      await client.reportPolicyStatus({ sandboxId: this.options.sandboxId, ...report }, this.callOptions);
    } catch (error) {
      // A revision the gateway no longer has cannot be reported: drop it rather than retry forever.
      if (OpenShellError.from(error).code !== "not_found") throw error;
      this.options.logger.warn(
        { policy_version: report.version },
        "the gateway no longer has this policy revision; status not reported",
      );
    }
    if (this.pendingReport === report) this.pendingReport = undefined;
  }
}
