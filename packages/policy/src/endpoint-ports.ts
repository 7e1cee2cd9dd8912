import type { sandboxv1 } from "@openshell/proto";

/** The ports an endpoint covers: `ports` when set, else the single `port` (0 = none). */
export function canonicalPorts(endpoint: sandboxv1.NetworkEndpoint): number[] {
  if (endpoint.ports.length > 0) return [...endpoint.ports];
  return endpoint.port > 0 ? [endpoint.port] : [];
}

/** Sorted, de-duplicated ports with `port` mirroring the first, as upstream's merge normalises endpoints. */
export function normalizeEndpointPorts(endpoint: sandboxv1.NetworkEndpoint): void {
  const ports = [...new Set(canonicalPorts(endpoint))].sort((a, b) => a - b);
  endpoint.port = ports[0] ?? 0;
  endpoint.ports = ports;
}
