import { existsSync } from "node:fs";
import { OpenShellError } from "@openshell/core";
import Docker from "dockerode";

/** Where the Docker API is, as the docker CLI reads it: DOCKER_HOST, else the default socket. */
function dockerEndpoint(host: string | undefined): {
  describe: string;
  options: Docker.DockerOptions;
} {
  if (!host)
    return { describe: "unix:///var/run/docker.sock", options: { socketPath: "/var/run/docker.sock" } };
  if (host.startsWith("unix://"))
    return { describe: host, options: { socketPath: host.slice("unix://".length) } };
  if (host.startsWith("tcp://")) {
    const url = new URL(host.replace(/^tcp:/, "http:"));
    return { describe: host, options: { host: url.hostname, port: Number(url.port || 2375) } };
  }
  throw new OpenShellError("config_invalid", `DOCKER_HOST='${host}' is not unix://PATH or tcp://HOST:PORT`);
}

const PING_TIMEOUT_MS = 5_000;

/**
 * A Docker client that answered a ping, or an error naming the fix: at driver start, not at the
 * first create. No request timeout on the client: the events stream is long-lived.
 */
export async function connectDocker(host: string | undefined): Promise<{ docker: Docker; describe: string }> {
  const endpoint = dockerEndpoint(host);
  const hint = `Start the Docker daemon (e.g. 'systemctl start docker'), or point DOCKER_HOST (--docker-host) at a running one (now: ${host ? `DOCKER_HOST=${host}` : "DOCKER_HOST unset, so /var/run/docker.sock"}); check with 'openshell-driver-docker doctor'.`;
  const socketPath = endpoint.options.socketPath;
  if (socketPath && !existsSync(socketPath)) {
    throw new OpenShellError("unavailable", `Docker is not running: no socket at ${socketPath}. ${hint}`);
  }
  const docker = new Docker(endpoint.options);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${PING_TIMEOUT_MS / 1000} s`)),
          PING_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EACCES") {
      throw new OpenShellError(
        "permission_denied",
        `no permission to use Docker at ${endpoint.describe}: run the gateway as root, or add its user to the 'docker' group (then log in again), or set DOCKER_HOST to a daemon it may use`,
      );
    }
    throw new OpenShellError(
      "unavailable",
      `Docker at ${endpoint.describe} is not answering (${(error as Error).message}). ${hint}`,
    );
  } finally {
    clearTimeout(timer);
  }
  return { docker, describe: endpoint.describe };
}

/** dockerode reports the HTTP status on its errors. */
export function dockerStatus(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** The daemon's message of a failed API call (dockerode puts the JSON body in `json`). */
export function dockerMessage(error: unknown): string {
  const json = (error as { json?: { message?: string } | null }).json;
  if (json && typeof json.message === "string") return json.message;
  return error instanceof Error ? error.message : String(error);
}
