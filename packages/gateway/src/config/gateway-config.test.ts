import { describe, expect, it } from "vitest";
import { GATEWAY_FLAGS, gatewayUsage, parseGatewayCommand } from "./gateway-config.js";

const base = ["--db-url", "sqlite::memory:", "--disable-tls", "--drivers", "test"];
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const parsed = parseGatewayCommand(args, env);
  if (parsed.kind !== "run") throw new Error(`expected run, got ${parsed.kind}`);
  return parsed.config;
};

describe("parseGatewayCommand", () => {
  it("applies upstream defaults", () => {
    const config = run(base);
    expect(config).toMatchObject({
      port: 8080,
      healthPort: 0,
      sandboxNamespace: "default",
      sshConnectPath: "/connect/ssh",
      tls: undefined,
    });
    expect(config.sshGatewayPort).toBe(8080);
    expect(config.timings.reconcileIntervalMs).toBe(60_000);
    expect(config.timings.orphanGraceMs).toBe(300_000);
  });

  it("reads env vars, and flags win over them", () => {
    expect(
      run(["--db-url", "sqlite::memory:", "--disable-tls"], {
        OPENSHELL_DRIVERS: "test",
        OPENSHELL_SERVER_PORT: "9000",
      }).port,
    ).toBe(9000);
    expect(run([...base, "--port", "9001"], { OPENSHELL_SERVER_PORT: "9000" }).port).toBe(9001);
  });

  it.each([
    [["--bogus"], /Unknown option '--bogus'.*--help/],
    [["--disable-tls", "--drivers", "test"], /--db-url is required/],
    [
      [...base, "--port", "8080", "--health-port", "8080"],
      /--port and --health-port must be different \(both set to 8080\)/,
    ],
    [[...base, "--port", "70000"], /not a valid port/],
    [[...base, "--tls-cert", "c.pem"], /--tls-cert conflicts with --disable-tls/],
    [[...base, "--disable-gateway-auth"], /--disable-gateway-auth has no effect with --disable-tls/],
    [
      ["--db-url", "x", "--drivers", "test"],
      /--tls-cert is required when TLS is enabled \(use --disable-tls to skip\)/,
    ],
    [
      ["--db-url", "x", "--drivers", "test", "--tls-cert", "c", "--tls-key", "k"],
      /--tls-client-ca is required for mTLS/,
    ],
    [
      ["--db-url", "x", "--disable-tls", "--drivers", "podman"],
      /compute driver 'podman' is not implemented yet/,
    ],
    [
      ["--db-url", "x", "--disable-tls", "--drivers", "vm,test"],
      /multiple compute drivers are not supported yet; configured drivers: vm,test/,
    ],
    [["--db-url", "x", "--disable-tls", "--drivers", "nope"], /unsupported compute driver 'nope'/],
    [
      ["--db-url", "x", "--disable-tls", "--drivers", "vm"],
      /--grpc-endpoint is required when using the vm compute driver/,
    ],
    [[...base, "--log-level", "loud"], /--log-level 'loud'/],
  ])("rejects %j", (args, message) => {
    expect(() => parseGatewayCommand(args as string[], {})).toThrow(message);
  });

  it("TLS without client auth needs no client CA", () => {
    const config = run([
      "--db-url",
      "x",
      "--drivers",
      "test",
      "--tls-cert",
      "c",
      "--tls-key",
      "k",
      "--disable-gateway-auth",
    ]);
    expect(config.tls).toEqual({ cert: "c", key: "k", clientCa: undefined });
  });

  it("recognises --help and --version", () => {
    expect(parseGatewayCommand(["--help"], {}).kind).toBe("help");
    expect(parseGatewayCommand(["-V"], {}).kind).toBe("version");
  });

  it("defaults to the vm driver, which exists", () => {
    const config = run(["--db-url", "x", "--disable-tls", "--grpc-endpoint", "http://127.0.0.1:8080"]);
    expect(config.driver).toBe("vm");
  });

  it("--driver is an alias of --drivers, and a flag wins over OPENSHELL_DRIVERS", () => {
    const args = ["--db-url", "x", "--disable-tls", "--driver", "test"];
    expect(run(args, { OPENSHELL_DRIVERS: "vm" }).driver).toBe("test");
    expect(() => run([...args, "--drivers", "test"])).toThrow("--drivers and --driver are the same flag");
  });

  it("--help is generated from the flag table: every flag and env var is listed", () => {
    const help = gatewayUsage();
    for (const [name, spec] of Object.entries(GATEWAY_FLAGS)) {
      if (!("envOnly" in spec)) expect(help).toContain(`--${name}`);
      if ("env" in spec) expect(help).toContain(spec.env);
    }
  });
});
