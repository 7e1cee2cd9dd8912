/** Upstream's deterministic names for a gateway's Docker resources. */
export interface DockerGatewayNames {
  container: string;
  volume: string;
  network: string;
  hostname: string;
}

export function dockerGatewayNames(gateway: string): DockerGatewayNames {
  const resource = `openshell-cluster-${gateway}`;
  const normalized = gateway
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return {
    container: resource,
    volume: resource,
    network: resource,
    hostname: normalized ? `openshell-${normalized}`.slice(0, 63) : "openshell-gateway",
  };
}

export const GATEWAY_LABEL = "org.openshell.gateway";
/** Where the image keeps its state (database, PKI, VM disks): the volume's mount point. */
export const STATE_MOUNT = "/var/lib/openshell";
export const CONTAINER_PORT = "8080/tcp";
export const DEFAULT_GATEWAY_IMAGE = "openshell/gateway:dev";
