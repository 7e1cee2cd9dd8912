import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { writeFileAtomic } from "./atomic-file.js";
import type { OpenShellPaths } from "./paths.js";

/**
 * `gateways/<name>/metadata.json`, with upstream's field names so upstream's SDKs find our gateways.
 * `deployment` is ours: how the CLI manages this gateway (upstream ignores unknown fields).
 */
export interface GatewayMetadata {
  name: string;
  gateway_endpoint: string;
  is_remote: boolean;
  gateway_port: number;
  remote_host?: string;
  resolved_host?: string;
  auth_mode?: "mtls" | "plaintext" | "cloudflare_jwt";
  deployment?: "process" | "docker" | "registered";
  driver?: string;
  /** Why this driver, when `gateway start --driver auto` chose it. */
  driver_reason?: string;
}

export interface ClientTlsFiles {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const GATEWAY_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function validateGatewayName(name: string): string {
  if (!GATEWAY_NAME.test(name))
    throw new OpenShellError(
      "invalid_argument",
      `invalid gateway name '${name}': use letters, digits, '.', '_' or '-' (at most 63 characters)`,
    );
  return name;
}

export function noSuchGateway(name: string): OpenShellError {
  return new OpenShellError("not_found", `no gateway named '${name}' (see: openshell gateway list)`);
}

/** The CLI's record of gateways, the active one and each gateway's last-used sandbox. */
export class GatewayRegistry {
  constructor(readonly paths: OpenShellPaths) {}

  gatewayDir(name: string): string {
    return join(this.paths.configDir, "gateways", validateGatewayName(name));
  }

  mtlsDir(name: string): string {
    return join(this.gatewayDir(name), "mtls");
  }

  read(name: string): GatewayMetadata | undefined {
    const file = join(this.gatewayDir(name), "metadata.json");
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, "utf8")) as GatewayMetadata;
    } catch (error) {
      throw new OpenShellError(
        "config_invalid",
        `${file} is not valid JSON (${(error as Error).message}); fix or remove it, then run 'openshell gateway start' again`,
      );
    }
  }

  /** The metadata of `name`, or a not-found error that says where to look. */
  require(name: string): GatewayMetadata {
    const metadata = this.read(name);
    if (!metadata) throw noSuchGateway(name);
    return metadata;
  }

  write(metadata: GatewayMetadata): void {
    writeRegistryFile(
      join(this.gatewayDir(metadata.name), "metadata.json"),
      `${JSON.stringify(metadata, null, 2)}\n`,
    );
  }

  list(): GatewayMetadata[] {
    const dir = join(this.paths.configDir, "gateways");
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((name) => GATEWAY_NAME.test(name))
      .flatMap((name) => {
        const metadata = this.read(name);
        return metadata ? [metadata] : [];
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  remove(name: string): void {
    rmSync(this.gatewayDir(name), { recursive: true, force: true });
    if (this.active() === name) rmSync(join(this.paths.configDir, "active_gateway"), { force: true });
  }

  active(): string | undefined {
    const file = join(this.paths.configDir, "active_gateway");
    if (!existsSync(file)) return undefined;
    return readFileSync(file, "utf8").trim() || undefined;
  }

  setActive(name: string): void {
    writeRegistryFile(join(this.paths.configDir, "active_gateway"), `${validateGatewayName(name)}\n`);
  }

  /** Client TLS material for an https gateway: `mtls/{ca.crt,tls.crt,tls.key}`. */
  readClientTls(name: string): ClientTlsFiles | undefined {
    const dir = this.mtlsDir(name);
    const ca = join(dir, "ca.crt");
    if (!existsSync(ca)) return undefined;
    const cert = join(dir, "tls.crt");
    const key = join(dir, "tls.key");
    return {
      ca: readFileSync(ca),
      ...(existsSync(cert) && existsSync(key) ? { cert: readFileSync(cert), key: readFileSync(key) } : {}),
    };
  }

  writeClientTls(name: string, files: { ca: string; cert?: string; key?: string }): void {
    const dir = this.mtlsDir(name);
    writeRegistryFile(join(dir, "ca.crt"), files.ca);
    if (files.cert && files.key) {
      writeRegistryFile(join(dir, "tls.crt"), files.cert);
      writeRegistryFile(join(dir, "tls.key"), files.key, 0o600);
    }
  }

  lastSandbox(gateway: string): string | undefined {
    const file = join(this.gatewayDir(gateway), "last_sandbox");
    if (!existsSync(file)) return undefined;
    return readFileSync(file, "utf8").trim() || undefined;
  }

  setLastSandbox(gateway: string, sandbox: string): void {
    if (!existsSync(this.gatewayDir(gateway))) return;
    writeRegistryFile(join(this.gatewayDir(gateway), "last_sandbox"), `${sandbox}\n`);
  }

  clearLastSandbox(gateway: string, sandbox: string): void {
    if (this.lastSandbox(gateway) === sandbox)
      rmSync(join(this.gatewayDir(gateway), "last_sandbox"), { force: true });
  }
}

/** Replaces `file` whole, creating its directory 0700. */
function writeRegistryFile(file: string, content: string, mode = 0o644): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, content, mode);
}
