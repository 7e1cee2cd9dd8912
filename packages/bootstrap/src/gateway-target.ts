import { OpenShellError } from "@openshell/core";
import type { ClientTlsFiles, GatewayMetadata, GatewayRegistry } from "./gateway-registry.js";

/** The gateway a command talks to, after applying upstream's resolution order. */
export interface GatewayTarget {
  /** Registered name; undefined for a bare --gateway-endpoint that matches no registration. */
  name: string | undefined;
  endpoint: URL;
  tls: ClientTlsFiles | undefined;
  metadata: GatewayMetadata | undefined;
}

export interface GatewaySelection {
  gateway?: string | undefined;
  gatewayEndpoint?: string | undefined;
}

export const NO_ACTIVE_GATEWAY =
  "No active gateway.\nSet one with: openshell gateway select <name>\nOr deploy a new gateway: openshell gateway start";

/**
 * `--gateway-endpoint` > `--gateway` > `OPENSHELL_GATEWAY` > `active_gateway`. Returns undefined when
 * nothing is configured, so `sandbox create` can bootstrap and `status` can say so kindly.
 */
export function resolveGatewayTarget(
  registry: GatewayRegistry,
  selection: GatewaySelection,
  env: NodeJS.ProcessEnv = process.env,
): GatewayTarget | undefined {
  const endpointText = selection.gatewayEndpoint ?? env.OPENSHELL_GATEWAY_ENDPOINT;
  if (endpointText) {
    const endpoint = parseEndpoint(endpointText);
    const named = registry.list().find((metadata) => sameEndpoint(metadata.gateway_endpoint, endpoint));
    return {
      name: named?.name,
      endpoint,
      tls: named ? registry.readClientTls(named.name) : undefined,
      metadata: named,
    };
  }
  const name = selection.gateway ?? env.OPENSHELL_GATEWAY ?? registry.active();
  if (!name) return undefined;
  const metadata = registry.read(name);
  if (!metadata) {
    const known = registry.list().map((entry) => entry.name);
    throw new OpenShellError(
      "not_found",
      `Unknown gateway '${name}'.${known.length > 0 ? ` Known gateways: ${known.join(", ")}.` : ""}\nDeploy it with: openshell gateway start --name ${name}\nOr register an existing one with: openshell gateway add <endpoint> --name ${name}`,
    );
  }
  return gatewayTargetOf(registry, metadata);
}

/** The target a registered gateway's metadata describes, with its client TLS files. */
export function gatewayTargetOf(registry: GatewayRegistry, metadata: GatewayMetadata): GatewayTarget {
  return {
    name: metadata.name,
    endpoint: parseEndpoint(metadata.gateway_endpoint),
    tls: registry.readClientTls(metadata.name),
    metadata,
  };
}

export function requireGatewayTarget(
  registry: GatewayRegistry,
  selection: GatewaySelection,
  env: NodeJS.ProcessEnv = process.env,
): GatewayTarget {
  const target = resolveGatewayTarget(registry, selection, env);
  if (!target) throw new OpenShellError("unavailable", NO_ACTIVE_GATEWAY);
  return target;
}

export function parseEndpoint(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new OpenShellError(
      "invalid_argument",
      `'${text}' is not a gateway URL; use http://host:port or https://host:port`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new OpenShellError("invalid_argument", `gateway URL '${text}' must start with http:// or https://`);
  return url;
}

function sameEndpoint(stored: string, endpoint: URL): boolean {
  try {
    return new URL(stored).origin === endpoint.origin;
  } catch {
    return false;
  }
}

/** How a target is named in messages. */
export function describeTarget(target: GatewayTarget): string {
  return target.name ? `'${target.name}' (${target.endpoint.origin})` : target.endpoint.origin;
}
