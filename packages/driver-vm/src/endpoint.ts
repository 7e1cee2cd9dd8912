import { OpenShellError } from "@openshell/core";

/** The name the guest's /etc/hosts maps to the host (QEMU user networking's 10.0.2.2). */
export const HOST_ALIAS = "host.openshell.internal";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/**
 * Checks --openshell-endpoint and returns the URL the guest must dial: a loopback host means the
 * host itself, which the guest reaches as HOST_ALIAS through QEMU's user-mode network.
 */
export function guestEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new OpenShellError(
      "config_invalid",
      `--openshell-endpoint '${endpoint}' is not a URL (e.g. http://127.0.0.1:8080)`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OpenShellError(
      "config_invalid",
      `--openshell-endpoint '${endpoint}' must be http:// or https://`,
    );
  }
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]" || url.hostname === "::") {
    throw new OpenShellError(
      "config_invalid",
      `--openshell-endpoint '${endpoint}' is not reachable from sandbox VMs; use a concrete host such as 127.0.0.1, ${HOST_ALIAS}, or another routable address`,
    );
  }
  if (LOOPBACK_HOSTS.has(url.hostname)) url.hostname = HOST_ALIAS;
  return url.toString().replace(/\/$/, "");
}
