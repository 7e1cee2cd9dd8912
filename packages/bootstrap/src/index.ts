/**
 * Gateway bootstrap: the registry of known gateways, local gateway processes, their PKI and
 * process identity. The Docker deployment is the `./docker` subpath so dockerode loads only there.
 */
export type { BootstrapInputs, BootstrapProgress, ProgressStep } from "./bootstrap-inputs.js";
export { shebangNodeFlags } from "./gateway-binaries.js";
export { connectGateway, type GatewayConnection, type OpenShellClient } from "./gateway-client.js";
export {
  type GatewayPki,
  type GatewayPkiOptions,
  generateGatewayPki,
  writeGatewayPki,
} from "./gateway-pki.js";
export {
  type ClientTlsFiles,
  type GatewayMetadata,
  GatewayRegistry,
  noSuchGateway,
  validateGatewayName,
} from "./gateway-registry.js";
export {
  describeTarget,
  type GatewayTarget,
  gatewayTargetOf,
  NO_ACTIVE_GATEWAY,
  parseEndpoint,
  requireGatewayTarget,
  resolveGatewayTarget,
} from "./gateway-target.js";
export {
  type LocalGatewayLayout,
  localGatewayLayout,
  runningGatewayPid,
  stopLocalGateway,
} from "./local-gateway.js";
export { DEFAULT_GATEWAY_NAME, ensureLocalGateway, type StartOptions } from "./local-gateway-start.js";
export { type OpenShellPaths, openshellPaths } from "./paths.js";
export { liveCommandLine } from "./process-identity.js";
