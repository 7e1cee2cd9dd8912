import type { ServiceImpl } from "@connectrpc/connect";
import { type Logger, mapServiceErrors, OPENSHELL_VERSION } from "@openshell/core";
import { OpenShell, ServiceStatus } from "@openshell/proto";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import type { ComputeRuntime } from "../compute/compute-runtime.js";
import type { SandboxEventHub } from "../events/sandbox-event-hub.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import type { ConfigChangeNotifier } from "../sessions/config-change-notifier.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";
import type { Store } from "../store/store.js";
import { createConfigRpcs } from "./config-service.js";
import { createExecRpcs } from "./exec-service.js";
import { createLogRpcs } from "./logs-service.js";
import { createProviderRpcs } from "./provider-service.js";
import { relayStream } from "./relay-service.js";
import { createSandboxRpcs } from "./sandbox-service.js";
import { createSshSessionRpcs, type SshSessionDeps } from "./ssh-session-service.js";
import { connectSupervisor } from "./supervisor-service.js";
import { watchSandbox } from "./watch-service.js";

export interface OpenShellServiceDeps {
  store: Store;
  records: SandboxRecords;
  hub: SandboxEventHub;
  runtime: ComputeRuntime;
  sessions: SupervisorSessionRegistry;
  credentials: SupervisorCredentials;
  configChanges: ConfigChangeNotifier;
  logger: Logger;
  namespace: string;
  ssh: Omit<SshSessionDeps, "records" | "store">;
}

/** The openshell.v1.OpenShell service: each RPC group lives in its own module. */
export function createOpenShellService(deps: OpenShellServiceDeps): Partial<ServiceImpl<typeof OpenShell>> {
  const impl: Partial<ServiceImpl<typeof OpenShell>> = {
    health: () => ({ status: ServiceStatus.HEALTHY, version: OPENSHELL_VERSION }),
    ...createSandboxRpcs(deps),
    watchSandbox: (request, context) => watchSandbox(request, deps, context.signal),
    ...createLogRpcs(deps),
    ...createProviderRpcs(deps),
    ...createSshSessionRpcs({ ...deps.ssh, records: deps.records, store: deps.store }),
    connectSupervisor: (requests, context) => connectSupervisor(requests, context, deps),
    relayStream: (requests, context) => relayStream(requests, context, deps),
    ...createExecRpcs(deps),
    ...createConfigRpcs(deps),
  };
  return mapServiceErrors(OpenShell, impl);
}
