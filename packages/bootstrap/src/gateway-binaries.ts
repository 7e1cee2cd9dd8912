import { existsSync, statSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { OpenShellError } from "@openshell/core";

/** How to run a binary: a `.js` bundle runs under this Node, anything else as itself. */
export interface Launch {
  command: string;
  args: string[];
}

function launchFor(file: string): Launch {
  return file.endsWith(".js") ? { command: process.execPath, args: [file] } : { command: file, args: [] };
}

/**
 * The repository root when the CLI runs from a checkout: this module is bundled into
 * apps/cli/dist/*.js, three levels below the root (unbundled it finds nothing and falls back to PATH).
 */
function checkoutRoot(): string | undefined {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
  return existsSync(join(root, "pnpm-workspace.yaml")) ? root : undefined;
}

function onPath(binary: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/** `openshell-gateway`: OPENSHELL_GATEWAY_BIN, the checkout's build, then PATH. */
export function findGatewayBinary(env: NodeJS.ProcessEnv = process.env): Launch {
  const explicit = env.OPENSHELL_GATEWAY_BIN;
  if (explicit) {
    if (!existsSync(explicit))
      throw new OpenShellError(
        "not_found",
        `OPENSHELL_GATEWAY_BIN points at '${explicit}', which does not exist`,
      );
    return launchFor(explicit);
  }
  const root = checkoutRoot();
  const built = root && join(root, "packages", "gateway", "dist", "openshell-gateway.js");
  if (built && existsSync(built)) return launchFor(built);
  const installed = onPath("openshell-gateway", env);
  if (installed) return launchFor(installed);
  throw new OpenShellError(
    "not_found",
    "openshell-gateway is not installed: put it on PATH (the README set-up does), or set OPENSHELL_GATEWAY_BIN to its path",
  );
}

/** Where the gateway should look for `openshell-driver-<name>` first (undefined: beside itself, PATH). */
export function findDriverDir(driver: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.OPENSHELL_DRIVER_DIR) return env.OPENSHELL_DRIVER_DIR;
  const root = checkoutRoot();
  const built = root && join(root, "packages", `driver-${driver}`, "dist");
  return built && existsSync(built) ? built : undefined;
}
