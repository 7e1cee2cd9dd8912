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
});
