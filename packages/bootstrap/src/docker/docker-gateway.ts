import { existsSync } from "node:fs";
import { OpenShellError } from "@openshell/core";
import type Docker from "dockerode";
import type { BootstrapInputs, BootstrapProgress } from "../bootstrap-inputs.js";
import { type GatewayPki, generateGatewayPki } from "../gateway-pki.js";
import type { GatewayMetadata } from "../gateway-registry.js";
import { type GatewayTarget, gatewayTargetOf } from "../gateway-target.js";
import { assertPortFree } from "../local-gateway.js";
import { defaultPort, waitUntilServing } from "../local-gateway-start.js";
import { connectDocker, isNotFound } from "./docker-connection.js";
import {
  CONTAINER_PORT,
  DEFAULT_GATEWAY_IMAGE,
  type DockerGatewayNames,
  dockerGatewayNames,
  GATEWAY_LABEL,
  STATE_MOUNT,
} from "./docker-names.js";
import { packTar, unpackTar } from "./tar-archive.js";

export interface DockerStartOptions {
  name: string;
  port?: number | undefined;
  recreate?: boolean | undefined;
}

const PKI_FILES = ["ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key"] as const;
const STOP_TIMEOUT_S = 60;
const START_TIMEOUT_MS = 180_000;

async function inspectContainer(
  docker: Docker,
  name: string,
): Promise<Docker.ContainerInspectInfo | undefined> {
  try {
    return await docker.getContainer(name).inspect();
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

async function exists(inspect: () => Promise<unknown>): Promise<boolean> {
  try {
    await inspect();
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

function publishedPort(container: Docker.ContainerInspectInfo): number | undefined {
  const binding = container.HostConfig.PortBindings?.[CONTAINER_PORT]?.[0];
  return binding?.HostPort ? Number(binding.HostPort) : undefined;
}

/** Removes container, network and volume; whatever is already gone is fine. */
async function removeResources(docker: Docker, names: DockerGatewayNames, keepVolume = false): Promise<void> {
  const ignoreMissing = (error: unknown) => {
    if (!isNotFound(error)) throw error;
  };
  await docker.getContainer(names.container).remove({ force: true, v: false }).catch(ignoreMissing);
  await docker.getNetwork(names.network).remove().catch(ignoreMissing);
  if (!keepVolume) await docker.getVolume(names.volume).remove({ force: true }).catch(ignoreMissing);
}

/** The explicit step that puts the gateway image in the daemon; named by the error when it is missing. */
const BUILD_IMAGE_STEP = "bash scripts/build-gateway-image.sh";

/**
 * The gateway image must already be in the daemon: building it is an explicit step run from an
 * openshell-ts checkout, never a script the CLI runs on its own (no registry to pull from is assumed).
 */
async function requireImage(docker: Docker, image: string): Promise<void> {
  if (await exists(() => docker.getImage(image).inspect())) return;
  const tag = image === DEFAULT_GATEWAY_IMAGE ? "" : ` --tag ${image}`;
  throw new OpenShellError(
    "not_found",
    `the gateway image ${image} is not in this Docker daemon; build it first from an openshell-ts checkout with: ${BUILD_IMAGE_STEP}${tag} (or set OPENSHELL_GATEWAY_IMAGE to an image the daemon has)`,
  );
}

async function ensureNetwork(docker: Docker, names: DockerGatewayNames, gateway: string): Promise<string> {
  try {
    return (await docker.getNetwork(names.network).inspect()).Id as string;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const network = await docker.createNetwork({
    Name: names.network,
    Driver: "bridge",
    Labels: { [GATEWAY_LABEL]: gateway },
  });
  return network.id;
}

async function ensureVolume(docker: Docker, names: DockerGatewayNames, gateway: string): Promise<void> {
  if (await exists(() => docker.getVolume(names.volume).inspect())) return;
  await docker.createVolume({ Name: names.volume, Labels: { [GATEWAY_LABEL]: gateway } });
}

async function createContainer(
  docker: Docker,
  names: DockerGatewayNames,
  gateway: string,
  image: string,
  port: number,
): Promise<Docker.Container> {
  const kvm = existsSync("/dev/kvm");
  return docker.createContainer({
    name: names.container,
    Image: image,
    Hostname: names.hostname,
    Labels: { [GATEWAY_LABEL]: gateway },
    ExposedPorts: { [CONTAINER_PORT]: {} },
    StopTimeout: STOP_TIMEOUT_S,
    HostConfig: {
      Binds: [`${names.volume}:${STATE_MOUNT}`],
      PortBindings: { [CONTAINER_PORT]: [{ HostIp: "127.0.0.1", HostPort: String(port) }] },
      RestartPolicy: { Name: "unless-stopped" },
      NetworkMode: names.network,
      // The VM driver probes KVM and falls back to TCG with a clear log line when it cannot use it.
      Devices: kvm ? [{ PathOnHost: "/dev/kvm", PathInContainer: "/dev/kvm", CgroupPermissions: "rwm" }] : [],
    },
  });
}

async function readArchive(
  container: Docker.Container,
  path: string,
): Promise<Map<string, Buffer> | undefined> {
  try {
    const stream = await container.getArchive({ path });
    const chunks: Buffer[] = [];
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    return unpackTar(Buffer.concat(chunks));
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** The PKI lives in the volume: reused when complete, created (and written there) when absent. */
async function ensureVolumePki(
  output: BootstrapProgress,
  container: Docker.Container,
  gateway: string,
): Promise<GatewayPki> {
  const files = await readArchive(container, `${STATE_MOUNT}/pki`);
  const found =
    files && Object.fromEntries(PKI_FILES.map((file) => [file, files.get(`pki/${file}`)?.toString("utf8")]));
  if (found && PKI_FILES.every((file) => found[file])) {
    output.note("• Reusing existing TLS certificates");
    return {
      caCert: found["ca.crt"] as string,
      caKey: found["ca.key"] as string,
      serverCert: found["server.crt"] as string,
      serverKey: found["server.key"] as string,
      clientCert: found["client.crt"] as string,
      clientKey: found["client.key"] as string,
    };
  }
  if (files && files.size > 0)
    throw new OpenShellError(
      "config_invalid",
      `the gateway volume holds an incomplete PKI (${[...files.keys()].join(", ")}); start over with: openshell gateway start --docker --recreate`,
    );
  const pki = await generateGatewayPki({ gatewayName: gateway });
  const archive = packTar(
    ["pki"],
    [
      { name: "pki/ca.crt", content: pki.caCert },
      { name: "pki/ca.key", content: pki.caKey, mode: 0o600 },
      { name: "pki/server.crt", content: pki.serverCert },
      { name: "pki/server.key", content: pki.serverKey, mode: 0o600 },
      { name: "pki/client.crt", content: pki.clientCert },
      { name: "pki/client.key", content: pki.clientKey, mode: 0o600 },
    ],
  );
  await container.putArchive(archive, { path: STATE_MOUNT });
  output.note("• Generated the gateway's CA and certificates");
  return pki;
}

/** The container's last log lines (Docker multiplexes stdout/stderr in 8-byte-framed chunks). */
async function containerLogTail(container: Docker.Container, lines = 20): Promise<string> {
  try {
    const raw = (await container.logs({
      stdout: true,
      stderr: true,
      tail: lines,
      follow: false,
    })) as unknown as Buffer;
    const text: string[] = [];
    let offset = 0;
    while (offset + 8 <= raw.length) {
      const size = raw.readUInt32BE(offset + 4);
      text.push(raw.subarray(offset + 8, offset + 8 + size).toString("utf8"));
      offset += 8 + size;
    }
    return text.join("").trimEnd() || "(no output)";
  } catch (error) {
    return `(logs unavailable: ${(error as Error).message})`;
  }
}

function dockerMetadata(name: string, port: number): GatewayMetadata {
  return {
    name,
    gateway_endpoint: `https://127.0.0.1:${port}`,
    is_remote: false,
    gateway_port: port,
    deployment: "docker",
    driver: "vm",
  };
}

/**
 * `gateway start --docker`: resume whatever exists (a stopped container, or only the volume),
 * reconcile the network, reuse the PKI in the volume, and return only once Health answers.
 */
export async function ensureDockerGateway(
  inputs: BootstrapInputs,
  options: DockerStartOptions,
): Promise<{ target: GatewayTarget; alreadyRunning: boolean }> {
  const { progress: output, registry, env } = inputs;
  const { name } = options;
  const stored = registry.read(name);
  if (stored && stored.deployment !== "docker")
    throw new OpenShellError(
      "already_exists",
      `gateway '${name}' is a ${stored.deployment === "process" ? "local process" : "registered"} gateway, not a Docker one; pick another --name`,
    );
  const docker = await connectDocker(env);
  const names = dockerGatewayNames(name);
  let existing = await inspectContainer(docker, names.container);

  if (existing?.State.Running && !options.recreate) {
    const port = publishedPort(existing) ?? stored?.gateway_port ?? defaultPort(env);
    const metadata = stored ?? dockerMetadata(name, port);
    if (!stored || !registry.readClientTls(name)) {
      const pki = await ensureVolumePki(output, docker.getContainer(names.container), name);
      registry.writeClientTls(name, { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
      registry.write(metadata);
    }
    registry.setActive(name);
    return { target: gatewayTargetOf(registry, metadata), alreadyRunning: true };
  }
  if (options.recreate) {
    output.warn(
      `Recreating gateway '${name}': its container, volume (sandboxes, certificates) and network are deleted`,
    );
    await removeResources(docker, names);
    registry.remove(name);
    existing = undefined;
  }
  const resuming = Boolean(existing) || (await exists(() => docker.getVolume(names.volume).inspect()));
  if (resuming) output.note("• Resuming gateway from existing state");

  const image = env.OPENSHELL_GATEWAY_IMAGE || DEFAULT_GATEWAY_IMAGE;
  await requireImage(docker, image);
  await ensureVolume(docker, names, name);
  const networkId = await ensureNetwork(docker, names, name);
  const port =
    options.port ?? (existing && publishedPort(existing)) ?? stored?.gateway_port ?? defaultPort(env);

  // All state is in the volume, so a container that no longer fits (its network was deleted or
  // recreated, another image or port) is simply replaced.
  if (existing) {
    const attached = existing.NetworkSettings.Networks?.[names.network]?.NetworkID;
    const imageId = (await docker.getImage(image).inspect()).Id;
    if (attached !== networkId || existing.Image !== imageId || publishedPort(existing) !== port) {
      await docker.getContainer(names.container).remove({ force: true });
      existing = undefined;
    }
  }
  if (!existing) await assertPortFree(port);
  const container = existing
    ? docker.getContainer(names.container)
    : await createContainer(docker, names, name, image, port);

  const metadata = dockerMetadata(name, port);
  try {
    const pki = await ensureVolumePki(output, container, name);
    registry.writeClientTls(name, { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
    registry.write(metadata);
    const progress = output.progress(`Starting gateway '${name}' in Docker on ${metadata.gateway_endpoint}`);
    try {
      await container.start().catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 304) throw error; // 304: already started
      });
      await waitUntilServing(
        gatewayTargetOf(registry, metadata),
        async () => (await container.inspect()).State.Running,
        START_TIMEOUT_MS,
      );
    } finally {
      progress.done();
    }
  } catch (error) {
    const logs = await containerLogTail(container);
    // A failed fresh start leaves nothing behind; a failed resume keeps the volume (the sandboxes).
    await removeResources(docker, names, resuming);
    if (!resuming) registry.remove(name);
    throw new OpenShellError(
      "unavailable",
      `gateway '${name}' did not start in Docker: ${(error as Error).message}\n${resuming ? "The volume is kept; fix the cause and run openshell gateway start again." : ""}\nLast container log lines:\n${logs}`,
    );
  }
  registry.setActive(name);
  return { target: gatewayTargetOf(registry, metadata), alreadyRunning: false };
}

/** `docker stop`: the gateway powers its VMs off; container, volume and network stay. */
export async function stopDockerGateway(env: NodeJS.ProcessEnv, name: string): Promise<boolean> {
  const docker = await connectDocker(env);
  const names = dockerGatewayNames(name);
  const container = await inspectContainer(docker, names.container);
  if (!container?.State.Running) return false;
  await docker.getContainer(names.container).stop({ t: STOP_TIMEOUT_S });
  return true;
}

export async function destroyDockerGateway(env: NodeJS.ProcessEnv, name: string): Promise<void> {
  const docker = await connectDocker(env);
  await removeResources(docker, dockerGatewayNames(name));
}

/** The container's state for `gateway status` / `info` ("running", "exited", "missing"). */
export async function dockerGatewayState(env: NodeJS.ProcessEnv, name: string): Promise<string> {
  const docker = await connectDocker(env);
  const container = await inspectContainer(docker, dockerGatewayNames(name).container);
  return container ? container.State.Status : "missing";
}
