import { OpenShellError, parseByteQuantity, parseCpuQuantity } from "@openshell/core";
import type { compute } from "@openshell/proto";
import type Docker from "dockerode";

export const LABEL_SANDBOX_ID = "openshell.ai/sandbox-id";
export const LABEL_SANDBOX_NAME = "openshell.ai/sandbox-name";
export const LABEL_MANAGED_BY = "openshell.ai/managed-by";
export const MANAGED_BY = "openshell";
/** The label filter of everything this driver makes (containers, volumes, the network). */
export const MANAGED_FILTER = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
/**
 * Which driver (which gateway's state dir) a container belongs to: two gateways on one daemon each
 * list, watch and adopt only their own sandboxes, never report or touch the other's.
 */
export const LABEL_DRIVER_INSTANCE = "openshell.ai/driver-instance";

/** Where the supervisor directory is mounted read-only (the container's entrypoint lives there). */
const SUPERVISOR_DIR = "/opt/openshell/bin";
const SUPERVISOR_ENTRYPOINT = `${SUPERVISOR_DIR}/openshell-sandbox`;
const CLIENT_TLS_DIR = "/etc/openshell-tls/client";
const WORKSPACE_MOUNT = "/sandbox";
const SSH_SOCKET_PATH = "/run/openshell/ssh.sock";
/** The workload the supervisor keeps running; SSH and exec are the real work. */
const SANDBOX_COMMAND = "sleep infinity";
/** The name containers reach the host by (`--add-host`, the driver's bridge gateway address). */
export const HOST_ALIAS = "host.openshell.internal";

/**
 * What the supervisor needs beyond Docker's default capabilities (which keep SETUID/SETGID, CHOWN,
 * DAC_OVERRIDE, KILL... for dropping to the `sandbox` user), found by removing each in turn and
 * running the integration test:
 * - NET_ADMIN: the policy's network namespace (veth pair, addresses, routes) and its nftables rules
 *   and trace monitor. Without it the supervisor fails closed and the sandbox never gets READY.
 * - SYS_ADMIN: creating and entering that namespace (`ip netns add` mounts it) and the launcher's
 *   mounts. Without it, the same.
 * - SYS_PTRACE: the egress proxy names the process behind each connection by reading
 *   /proc/<pid>/exe and fds of the workload's processes, which run as `sandbox` (10001) while the
 *   supervisor is root: another uid's /proc links need it (ptrace access mode). Create and exec work
 *   without it; process identity in policy decisions does not.
 * Not SYSLOG (the Kubernetes pod spec carries it from upstream): nothing here reads the kernel log;
 * refused traffic is traced through nftables. Never --privileged.
 */
export const SANDBOX_CAPABILITIES = ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"] as const;

export interface ContainerSpecOptions {
  /** Image of sandboxes whose template names none. */
  defaultImage: string;
  /** The gateway URL as a container reaches it. */
  endpoint: string;
  /** The driver's network (user-defined bridge) and the address the host has on it. */
  network: string;
  hostAddress: string;
  /** Host directory with the staged supervisor, mounted read-only at /opt/openshell/bin. */
  supervisorDir: string;
  /** Host directory with ca.crt, tls.crt, tls.key for an https:// endpoint. */
  tlsDir?: string;
  /** `--runtime` (e.g. runsc), else the daemon's default. */
  runtime?: string;
  /** This driver's instance id (LABEL_DRIVER_INSTANCE). */
  instance: string;
}

export function containerName(sandboxName: string): string {
  return `openshell-${sandboxName}`;
}

export function workspaceVolumeName(sandboxId: string): string {
  return `openshell-workspace-${sandboxId}`;
}

/** A container's name is its hostname too: a DNS label. */
export function validateSandbox(sandbox: compute.DriverSandbox | undefined): compute.DriverSandbox {
  if (!sandbox?.id) throw new OpenShellError("invalid_argument", "sandbox.id is required");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(sandbox.id)) {
    throw new OpenShellError(
      "invalid_argument",
      `sandbox.id '${sandbox.id}' is not usable in a Docker volume name`,
    );
  }
  if (!sandbox.name) throw new OpenShellError("invalid_argument", "sandbox.name is required");
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(sandbox.name)) {
    throw new OpenShellError(
      "invalid_argument",
      `sandbox name '${sandbox.name}' is not usable as a container hostname: lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit`,
    );
  }
  if (sandbox.spec?.gpu) {
    throw new OpenShellError("failed_precondition", "the docker compute driver does not offer GPUs");
  }
  const resources = sandbox.spec?.template?.resources;
  if (resources?.memoryLimit && parseByteQuantity(resources.memoryLimit) === undefined) {
    throw new OpenShellError(
      "invalid_argument",
      `memory limit '${resources.memoryLimit}' is not a quantity such as 512Mi`,
    );
  }
  if (resources?.cpuLimit && parseCpuQuantity(resources.cpuLimit) === undefined) {
    throw new OpenShellError(
      "invalid_argument",
      `cpu limit '${resources.cpuLimit}' is not a quantity such as 2 or 500m`,
    );
  }
  return sandbox;
}

export function imageOf(
  sandbox: compute.DriverSandbox,
  options: Pick<ContainerSpecOptions, "defaultImage">,
): string {
  return sandbox.spec?.template?.image || options.defaultImage;
}

/**
 * The container of a sandbox: the image's userland, the supervisor mounted read-only as its
 * entrypoint (root, the capabilities above, nothing published), the workspace volume at /sandbox,
 * and the identity and endpoint in its environment. Pure: tested field by field.
 */
export function buildContainerSpec(
  sandbox: compute.DriverSandbox,
  options: ContainerSpecOptions,
): Docker.ContainerCreateOptions {
  const template = sandbox.spec?.template;
  const labels: Record<string, string> = {
    ...(template?.labels ?? {}),
    [LABEL_SANDBOX_ID]: sandbox.id,
    [LABEL_SANDBOX_NAME]: sandbox.name,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_DRIVER_INSTANCE]: options.instance,
  };
  const mounts: Docker.MountConfig = [
    { Type: "bind", Source: options.supervisorDir, Target: SUPERVISOR_DIR, ReadOnly: true },
    // A fresh volume gets the image's /sandbox copied in by Docker when the container is created
    // (once: the container lives until Delete; Stop/Start keep it and the volume).
    { Type: "volume", Source: workspaceVolumeName(sandbox.id), Target: WORKSPACE_MOUNT },
  ];
  if (options.tlsDir) {
    mounts.push({ Type: "bind", Source: options.tlsDir, Target: CLIENT_TLS_DIR, ReadOnly: true });
  }
  const hostConfig: Docker.HostConfig = {
    NetworkMode: options.network,
    ExtraHosts: [`${HOST_ALIAS}:${options.hostAddress}`],
    CapAdd: [...SANDBOX_CAPABILITIES],
    Mounts: mounts,
    // dockerd restarts: running sandboxes come back; StopSandbox (docker stop) stays stopped.
    RestartPolicy: { Name: "unless-stopped" },
    Init: false,
  };
  const resources = template?.resources;
  const memory = resources?.memoryLimit ? parseByteQuantity(resources.memoryLimit) : undefined;
  if (memory !== undefined) {
    hostConfig.Memory = memory;
    hostConfig.MemorySwap = memory; // no swap: over the limit is an OOM kill, as in a pod
  }
  const cpus = resources?.cpuLimit ? parseCpuQuantity(resources.cpuLimit) : undefined;
  if (cpus !== undefined) hostConfig.NanoCpus = Math.round(cpus * 1e9);
  if (options.runtime) hostConfig.Runtime = options.runtime;
  return {
    name: containerName(sandbox.name),
    Hostname: sandbox.name,
    Image: imageOf(sandbox, options),
    Entrypoint: [SUPERVISOR_ENTRYPOINT],
    Cmd: [],
    User: "0:0",
    Env: containerEnvironment(sandbox, options),
    Labels: labels,
    HostConfig: hostConfig,
  };
}

/** The template's, the sandbox's, then the ones the supervisor needs (which win). */
function containerEnvironment(sandbox: compute.DriverSandbox, options: ContainerSpecOptions): string[] {
  const env = new Map<string, string>();
  for (const [name, value] of Object.entries(sandbox.spec?.template?.environment ?? {})) env.set(name, value);
  for (const [name, value] of Object.entries(sandbox.spec?.environment ?? {})) env.set(name, value);
  env.set("OPENSHELL_SANDBOX_ID", sandbox.id);
  env.set("OPENSHELL_SANDBOX", sandbox.name);
  env.set("OPENSHELL_ENDPOINT", options.endpoint);
  env.set("OPENSHELL_SANDBOX_COMMAND", SANDBOX_COMMAND);
  env.set("OPENSHELL_SSH_SOCKET_PATH", SSH_SOCKET_PATH);
  env.set("OPENSHELL_SUPERVISOR_TOKEN", sandbox.spec?.supervisorToken ?? "");
  if (sandbox.spec?.logLevel) env.set("OPENSHELL_LOG_LEVEL", sandbox.spec.logLevel);
  if (options.tlsDir) {
    env.set("OPENSHELL_TLS_CA", `${CLIENT_TLS_DIR}/ca.crt`);
    env.set("OPENSHELL_TLS_CERT", `${CLIENT_TLS_DIR}/tls.crt`);
    env.set("OPENSHELL_TLS_KEY", `${CLIENT_TLS_DIR}/tls.key`);
  }
  return [...env].map(([name, value]) => `${name}=${value}`);
}
