import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import {
  checkEnvironmentEntry,
  formatBytes,
  OpenShellError,
  parseByteQuantity,
  parseCpuQuantity,
} from "@openshell/core";
import type { compute } from "@openshell/proto";

/** What one VM gets: vCPUs, guest RAM and its disk's virtual size (undefined: the base image's). */
export interface VmSize {
  vcpus: number;
  memMib: number;
  diskBytes: number | undefined;
}

/** What this host can give one VM; creates asking for more are refused. */
export interface HostCapacity {
  cpus: number;
  memMib: number;
  /** Free bytes where the sandbox disks live. */
  diskFreeBytes: number;
  /** The base image's virtual size: a sandbox disk cannot be smaller. */
  minDiskBytes: number;
}

/** Below this a guest cannot run its init and the Node supervisor. */
const MIN_MEM_MIB = 256;
/** The Kubernetes resource names a VM honours (the disk is `ephemeral-storage`). */
const VM_RESOURCES = new Set(["cpu", "memory", "ephemeral-storage"]);
const DISK_RESOURCE = "ephemeral-storage";

/**
 * Upstream's VM validation (what a microVM cannot honour is refused up front), plus what this
 * driver checks itself: environment names and values it can pass on unchanged, and the sizes in
 * `template.resources` (`{limits,requests}.{cpu,memory,ephemeral-storage}`, Kubernetes quantities).
 * Returns the VM's size; `capacity` bounds it (undefined when re-booting an accepted sandbox).
 */
export function validateForVm(
  sandbox: compute.DriverSandbox | undefined,
  defaults: { vcpus: number; memMib: number },
  capacity?: HostCapacity,
): VmSize {
  if (!sandbox?.spec) throw new OpenShellError("invalid_argument", "sandbox spec is required");
  const template = sandbox.spec.template;
  const refuse = (field: string) => {
    throw new OpenShellError("failed_precondition", `vm sandboxes do not support ${field}`);
  };
  if (sandbox.spec.gpu) refuse("gpu");
  if (template?.image) refuse("template.image");
  if (template?.agentSocketPath) refuse("template.agent_socket_path");
  // The gateway forwards the template's whole resources struct as platform_config.resources_raw
  // (upstream's mapping); every other platform setting is Kubernetes-only.
  for (const key of Object.keys(template?.platformConfig ?? {}))
    if (key !== "resources_raw") refuse(`template.platform_config.${key}`);
  checkEnvironment(sandbox.spec.environment, "spec.environment");
  checkEnvironment(template?.environment, "spec.template.environment");
  const size = vmSize(template, defaults);
  if (capacity) checkCapacity(size, capacity);
  return size;
}

/** Names the guest init accepts and values it can pass on as one `KEY=VALUE` line, unchanged. */
function checkEnvironment(environment: Record<string, string> | undefined, where: string): void {
  for (const [name, value] of Object.entries(environment ?? {})) checkEnvironmentEntry(where, name, value);
}

function vmSize(
  template: compute.DriverSandboxTemplate | undefined,
  defaults: { vcpus: number; memMib: number },
): VmSize {
  const raw = template?.platformConfig?.resources_raw;
  const sections = isObject(raw) ? raw : {};
  for (const [section, values] of Object.entries(sections)) {
    if (!isObject(values)) continue;
    for (const name of Object.keys(values))
      if (!VM_RESOURCES.has(name))
        throw new OpenShellError(
          "failed_precondition",
          `vm sandboxes do not support the resource ${JSON.stringify(name)} (in resources.${section}); they honour cpu, memory and ${DISK_RESOURCE}`,
        );
  }
  const typed = template?.resources;
  const rawValue = (name: string) => {
    const pick = (section: string) => {
      const value = (sections[section] as JsonObject | undefined)?.[name];
      return typeof value === "string" || typeof value === "number" ? String(value) : "";
    };
    return pick("limits") || pick("requests");
  };
  const cpuText = typed?.cpuLimit || typed?.cpuRequest || rawValue("cpu");
  const memoryText = typed?.memoryLimit || typed?.memoryRequest || rawValue("memory");
  const diskText = rawValue(DISK_RESOURCE);
  return {
    vcpus: cpuText ? cpus(cpuText) : defaults.vcpus,
    memMib: memoryText ? Math.ceil(bytes(memoryText, "memory") / 2 ** 20) : defaults.memMib,
    diskBytes: diskText ? bytes(diskText, DISK_RESOURCE) : undefined,
  };
}

/** A VM has whole vCPUs: a fraction (`1.5`, `500m`) is rounded up. */
function cpus(text: string): number {
  const value = parseCpuQuantity(text);
  if (value === undefined || value <= 0)
    throw new OpenShellError(
      "invalid_argument",
      `resources cpu ${JSON.stringify(text)} is not a CPU count: use a number such as 2 (or 500m)`,
    );
  return Math.ceil(value);
}

function bytes(text: string, name: string): number {
  const value = parseByteQuantity(text);
  if (value === undefined || value <= 0)
    throw new OpenShellError(
      "invalid_argument",
      `resources ${name} ${JSON.stringify(text)} is not a size: use a quantity such as 512Mi or 2Gi`,
    );
  return value;
}

function checkCapacity(size: VmSize, capacity: HostCapacity): void {
  const invalid = (message: string) => {
    throw new OpenShellError("invalid_argument", message);
  };
  if (size.vcpus > capacity.cpus)
    invalid(`cpu ${size.vcpus} is more than this host has (${capacity.cpus} CPUs)`);
  if (size.memMib < MIN_MEM_MIB)
    invalid(`memory ${size.memMib} MiB is too small: a VM needs at least ${MIN_MEM_MIB} MiB`);
  if (size.memMib > capacity.memMib)
    invalid(`memory ${size.memMib} MiB is more than this host has (${capacity.memMib} MiB)`);
  if (size.diskBytes === undefined) return;
  if (size.diskBytes < capacity.minDiskBytes)
    invalid(
      `disk ${formatBytes(size.diskBytes)} is smaller than the sandbox image (${formatBytes(capacity.minDiskBytes)}); ask for at least that`,
    );
  if (size.diskBytes > capacity.diskFreeBytes)
    invalid(
      `disk ${formatBytes(size.diskBytes)} is more than the free space where sandbox disks live (${formatBytes(capacity.diskFreeBytes)})`,
    );
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
