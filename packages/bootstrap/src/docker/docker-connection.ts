import { existsSync } from "node:fs";
import { OpenShellError } from "@openshell/core";
import Docker from "dockerode";

/** Where the Docker API is, as the docker CLI reads it: DOCKER_HOST, else the default socket. */
function dockerEndpoint(env: NodeJS.ProcessEnv): { describe: string; options: Docker.DockerOptions } {
  const host = env.DOCKER_HOST;
  if (!host) return { describe: "/var/run/docker.sock", options: { socketPath: "/var/run/docker.sock" } };
  if (host.startsWith("unix://")) {
    const socketPath = host.slice("unix://".length);
    return { describe: host, options: { socketPath } };
  }
  if (host.startsWith("tcp://")) {
    const url = new URL(host.replace(/^tcp:/, "http:"));
    return { describe: host, options: { host: url.hostname, port: Number(url.port || 2375) } };
  }
  throw new OpenShellError("invalid_argument", `DOCKER_HOST='${host}' is not unix://PATH or tcp://HOST:PORT`);
}

const PING_TIMEOUT_MS = 3_000;

/** A Docker client that answered a ping, or an error that says how to get one. */
export async function connectDocker(env: NodeJS.ProcessEnv): Promise<Docker> {
  const endpoint = dockerEndpoint(env);
  const hint = `Check it with: docker info\nStart the Docker daemon (e.g. 'systemctl start docker', or 'dockerd &' as root), or point DOCKER_HOST at a running one (now: ${env.DOCKER_HOST ? `DOCKER_HOST=${env.DOCKER_HOST}` : "DOCKER_HOST unset, so /var/run/docker.sock"}).`;
  if (endpoint.options.socketPath && !existsSync(endpoint.options.socketPath))
    throw new OpenShellError(
      "unavailable",
      `Docker is not running: no socket at ${endpoint.options.socketPath}.\n${hint}`,
    );
  const docker = new Docker({ ...endpoint.options, timeout: 120_000 });
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error(`no answer within ${PING_TIMEOUT_MS / 1000} s`)),
          PING_TIMEOUT_MS,
        ).unref(),
      ),
    ]);
  } catch (error) {
    const denied = (error as NodeJS.ErrnoException).code === "EACCES";
    throw new OpenShellError(
      denied ? "permission_denied" : "unavailable",
      denied
        ? `no permission to use Docker at ${endpoint.describe}: run as root, or add your user to the 'docker' group (then log in again)`
        : `Docker at ${endpoint.describe} is not answering (${(error as Error).message}).\n${hint}`,
    );
  }
  return docker;
}

/** dockerode reports HTTP status codes on its errors. */
export function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404;
}
