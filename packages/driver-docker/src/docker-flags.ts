import type { FlagTable, FlagValues } from "@openshell/core";

/** The Docker driver's flags beyond the common ones (driver-sdk's DRIVER_COMMON_FLAGS). */
export const DOCKER_DRIVER_FLAGS = {
  "docker-host": {
    type: "string",
    env: "DOCKER_HOST",
    arg: "URL",
    description: "Docker API: unix://PATH or tcp://HOST:PORT (default unix:///var/run/docker.sock)",
  },
  "openshell-endpoint": {
    type: "string",
    env: "OPENSHELL_GRPC_ENDPOINT",
    arg: "URL",
    description:
      "gateway URL, required; a loopback one is forwarded from the sandbox network's host address (containers dial host.openshell.internal)",
  },
  "sandbox-image": {
    type: "string",
    env: "OPENSHELL_SANDBOX_IMAGE",
    arg: "IMAGE",
    description: "image of sandboxes whose template names none, required",
  },
  "sandbox-image-archive": {
    type: "string",
    env: "OPENSHELL_SANDBOX_IMAGE_ARCHIVE",
    arg: "FILE",
    description: "root filesystem tar imported as --sandbox-image when the daemon lacks it",
  },
  "supervisor-bin": {
    type: "string",
    env: "OPENSHELL_SUPERVISOR_BIN_DIR",
    arg: "DIR",
    description:
      "staged supervisor directory (stage-supervisor-bin.sh) mounted read-only into each container, required",
  },
  network: {
    type: "string",
    env: "OPENSHELL_DOCKER_NETWORK",
    default: "openshell",
    arg: "NAME",
    description: "bridge network of the sandbox containers (created when missing)",
  },
  runtime: {
    type: "string",
    env: "OPENSHELL_DOCKER_RUNTIME",
    arg: "NAME",
    description: "OCI runtime of the containers, e.g. runsc (default: the daemon's)",
  },
  "guest-tls-ca": { type: "string", arg: "FILE", description: "CA of the gateway, for an https:// endpoint" },
  "guest-tls-cert": {
    type: "string",
    arg: "FILE",
    description: "client certificate the supervisors present",
  },
  "guest-tls-key": { type: "string", arg: "FILE", description: "its key" },
} as const satisfies FlagTable;

export type DockerFlags = FlagValues<typeof DOCKER_DRIVER_FLAGS>;
