import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type GatewayMetadata, GatewayRegistry } from "./gateway-registry.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function registry(): GatewayRegistry {
  const root = mkdtempSync(join(tmpdir(), "osreg-"));
  dirs.push(root);
  return new GatewayRegistry({ configDir: join(root, "config"), dataDir: join(root, "data") });
}

const metadata: GatewayMetadata = {
  name: "openshell",
  gateway_endpoint: "https://127.0.0.1:8080",
  is_remote: false,
  gateway_port: 8080,
  auth_mode: "mtls",
};

describe("GatewayRegistry files", () => {
  it("writes metadata, the active gateway and the last sandbox, replacing each whole", () => {
    const reg = registry();
    reg.write(metadata);
    reg.write({ ...metadata, gateway_port: 9090 });
    reg.setActive("openshell");
    reg.setLastSandbox("openshell", "brave-otter");
    reg.setLastSandbox("openshell", "calm-heron");

    expect(reg.read("openshell")?.gateway_port).toBe(9090);
    expect(reg.active()).toBe("openshell");
    expect(reg.lastSandbox("openshell")).toBe("calm-heron");
    expect(statSync(reg.gatewayDir("openshell")).mode & 0o777).toBe(0o700);
    // No temp file is left beside what was replaced.
    expect(readdirSync(reg.gatewayDir("openshell")).sort()).toEqual(["last_sandbox", "metadata.json"]);
  });

  it("keeps the client key 0600 and the certificates 0644, also over files that had other modes", () => {
    const reg = registry();
    reg.write(metadata);
    reg.writeClientTls("openshell", { ca: "ca", cert: "cert", key: "key" });
    const dir = reg.mtlsDir("openshell");
    chmodSync(join(dir, "tls.key"), 0o644);
    chmodSync(join(dir, "ca.crt"), 0o600);
    reg.writeClientTls("openshell", { ca: "ca2", cert: "cert2", key: "key2" });

    expect(statSync(join(dir, "tls.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "tls.crt")).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, "ca.crt")).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(dir, "tls.key"), "utf8")).toBe("key2");
    expect(readdirSync(dir).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
  });
});
