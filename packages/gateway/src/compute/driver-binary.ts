import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { OpenShellError } from "@openshell/core";

export interface DriverCommand {
  file: string;
  /** Arguments before the driver's own flags (the script path when run through node). */
  prefixArgs: string[];
}

/**
 * Finds `openshell-driver-<name>`: in --driver-dir, then beside the gateway binary, then on PATH.
 * A `.js` bundle is run with the gateway's own Node (never whatever `node` PATH has).
 */
export function resolveDriverCommand(
  name: string,
  options: { driverDir: string | undefined; gatewayDir: string; path: string | undefined },
): DriverCommand {
  const binary = `openshell-driver-${name}`;
  const searched: string[] = [];
  const dirs = [
    ...(options.driverDir ? [options.driverDir] : []),
    options.gatewayDir,
    ...(options.path ?? "").split(delimiter).filter(Boolean),
  ];
  for (const dir of dirs) {
    for (const candidate of [join(dir, binary), join(dir, `${binary}.js`)]) {
      searched.push(candidate);
      if (!existsSync(candidate)) continue;
      if (candidate.endsWith(".js")) return { file: process.execPath, prefixArgs: [candidate] };
      if (isExecutable(candidate)) return { file: candidate, prefixArgs: [] };
    }
  }
  throw new OpenShellError(
    "failed_precondition",
    `compute driver binary '${binary}' not found. Searched: ${dirs.join(", ")}. Install it, or point --driver-dir (OPENSHELL_DRIVER_DIR) at the directory that holds it.`,
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function gatewayDirectory(): string {
  return dirname(process.argv[1] ?? process.execPath);
}
