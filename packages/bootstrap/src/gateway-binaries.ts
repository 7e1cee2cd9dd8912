import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, dirname, join } from "node:path";
import { OpenShellError } from "@openshell/core";

/** How to run a binary: a `.js` bundle runs under this Node, anything else as itself. */
export interface Launch {
  command: string;
  args: string[];
}

function launchFor(file: string): Launch {
  return file.endsWith(".js")
    ? { command: process.execPath, args: [...shebangNodeFlags(file), file] }
    : { command: file, args: [] };
}

const ENV_S_NODE = "#!/usr/bin/env -S node ";

/**
 * The Node flags a bundle's shebang declares (`#!/usr/bin/env -S node --max-semi-space-size=1`):
 * run under another Node the shebang is skipped, so whoever runs `node <bundle>` passes them.
 */
export function shebangNodeFlags(bundle: string): string[] {
  const head = Buffer.alloc(512);
  const fd = openSync(bundle, "r");
  let length: number;
  try {
    length = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const firstLine = head.toString("utf8", 0, length).split("\n", 1)[0] ?? "";
  return firstLine.startsWith(ENV_S_NODE)
    ? firstLine.slice(ENV_S_NODE.length).split(" ").filter(Boolean)
    : [];
}

/**
 * The directory of package `name` as Node resolves it from the CLI (or from package directory
 * `from`: that package's own dependencies first): the `openshell` package's own dependencies when
 * installed from npm, the workspace links (apps/cli/node_modules) in a checkout. Unbundled
 * (bootstrap's own tests) nothing resolves and callers fall back to PATH.
 */
export function installedPackageDir(name: string, from?: string): string | undefined {
  try {
    const require = createRequire(from ? join(from, "package.json") : import.meta.url);
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}

/** The file of `bin` in package `name`'s manifest, when the package resolves and the file exists. */
function installedBin(name: string, bin: string): string | undefined {
  const dir = installedPackageDir(name);
  if (!dir) return undefined;
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
    bin?: string | Record<string, string>;
  };
  const relative = typeof manifest.bin === "string" ? manifest.bin : manifest.bin?.[bin];
  const file = relative && join(dir, relative);
  return file && existsSync(file) ? file : undefined;
}

function onPath(binary: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/** `openshell-gateway`: OPENSHELL_GATEWAY_BIN, the `@openshell/gateway` package, then PATH. */
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
  const installed =
    installedBin("@openshell/gateway", "openshell-gateway") ?? onPath("openshell-gateway", env);
  if (installed) return launchFor(installed);
  throw new OpenShellError(
    "not_found",
    "openshell-gateway is not installed: reinstall the CLI (npm install -g openshell installs it), put it on PATH, or set OPENSHELL_GATEWAY_BIN to its path",
  );
}

/**
 * Where the gateway should look for `openshell-driver-<name>` first: OPENSHELL_DRIVER_DIR, else the
 * bin directory of the `@openshell/driver-<name>` package (undefined: beside the gateway, PATH).
 */
export function findDriverDir(driver: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.OPENSHELL_DRIVER_DIR) return env.OPENSHELL_DRIVER_DIR;
  const bin = installedBin(`@openshell/driver-${driver}`, `openshell-driver-${driver}`);
  return bin && dirname(bin);
}
