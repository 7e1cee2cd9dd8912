import { describe, expect, it } from "vitest";
import { parseGatewayCommand } from "../config/gateway-config.js";
import { driverArgs } from "./driver-args.js";

function configOf(args: string[]) {
  const parsed = parseGatewayCommand(["--db-url", "sqlite::memory:", "--disable-tls", ...args], {});
  if (parsed.kind !== "run") throw new Error(`expected run, got ${parsed.kind}`);
  return parsed.config;
}

describe("driverArgs", () => {
  it("hands the kubernetes driver its namespace, image, pull policy, endpoint and client TLS Secret", () => {
    const config = configOf([
      "--drivers",
      "kubernetes",
      "--sandbox-namespace",
      "openshell",
      "--sandbox-image",
      "example/sandbox:1",
      "--sandbox-image-pull-policy",
      "IfNotPresent",
      "--grpc-endpoint",
      "https://openshell.openshell.svc:8080",
      "--client-tls-secret-name",
      "openshell-client-tls",
    ]);
    expect(driverArgs(config)).toEqual([
      "--namespace",
      "openshell",
      "--sandbox-image",
      "example/sandbox:1",
      "--sandbox-image-pull-policy",
      "IfNotPresent",
      "--openshell-endpoint",
      "https://openshell.openshell.svc:8080",
      "--client-tls-secret",
      "openshell-client-tls",
    ]);
  });

  it("leaves out what is not set", () => {
    expect(driverArgs(configOf(["--drivers", "kubernetes"]))).toEqual(["--namespace", "default"]);
  });

  it("hands the VM and Docker drivers the guests' client certificate for mTLS", () => {
    const tls = [
      "--vm-tls-ca",
      "/p/ca.crt",
      "--vm-tls-cert",
      "/p/client.crt",
      "--vm-tls-key",
      "/p/client.key",
    ];
    const guestTls = [
      "--guest-tls-ca",
      "/p/ca.crt",
      "--guest-tls-cert",
      "/p/client.crt",
      "--guest-tls-key",
      "/p/client.key",
    ];
    const endpoint = ["--grpc-endpoint", "https://127.0.0.1:8080"];
    expect(driverArgs(configOf(["--drivers", "vm", ...endpoint, ...tls])).slice(-6)).toEqual(guestTls);
    expect(driverArgs(configOf(["--drivers", "docker", ...endpoint, ...tls]))).toEqual([
      "--openshell-endpoint",
      "https://127.0.0.1:8080",
      ...guestTls,
    ]);
  });
});
