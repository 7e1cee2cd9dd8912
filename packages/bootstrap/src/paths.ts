import { homedir } from "node:os";
import { join } from "node:path";

/** Where the CLI keeps its files; every path derives from the environment given, never a global. */
export interface OpenShellPaths {
  /** `$XDG_CONFIG_HOME/openshell` (upstream's layout: active_gateway, gateways/<name>/...). */
  configDir: string;
  /** `$XDG_DATA_HOME/openshell`: local gateways' state (store, PKI, VM disks, logs). */
  dataDir: string;
}

export function openshellPaths(env: NodeJS.ProcessEnv = process.env): OpenShellPaths {
  const home = env.HOME || homedir();
  return {
    configDir: join(env.XDG_CONFIG_HOME || join(home, ".config"), "openshell"),
    dataDir: join(env.XDG_DATA_HOME || join(home, ".local", "share"), "openshell"),
  };
}

/** A local gateway's own state directory. */
export function localGatewayStateDir(paths: OpenShellPaths, name: string): string {
  return join(paths.dataDir, "gateways", name);
}
