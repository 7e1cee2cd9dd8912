import { readFileSync } from "node:fs";
import { parseEndpoint, validateGatewayName } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import type { gatewayAddCommand } from "./add.js";

function readPem(file: string, what: string): string {
  try {
    const text = readFileSync(file, "utf8");
    if (!text.includes("-----BEGIN ")) throw new Error("not a PEM file");
    return text;
  } catch (error) {
    throw new OpenShellError(
      "invalid_argument",
      `cannot use ${file} as the ${what}: ${(error as Error).message}`,
    );
  }
}

/** Name from the host: letters, digits and '-' only ("gw.example.com" → "gw-example-com"). */
function nameFromHost(host: string): string {
  return (
    host
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63) || "gateway"
  );
}

export async function run(input: CommandInput<typeof gatewayAddCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const options = input.options;
  const endpoint = parseEndpoint(input.args.endpoint);
  const name = validateGatewayName(options.name ?? nameFromHost(endpoint.hostname));
  if (ctx.registry.read(name))
    throw new OpenShellError(
      "already_exists",
      `a gateway named '${name}' already exists; pick another --name or remove it first (openshell gateway destroy --name ${name})`,
    );
  const https = endpoint.protocol === "https:";
  const { caCert, clientCert, clientKey } = options;
  if (!https && (caCert || clientCert || clientKey))
    throw new OpenShellError(
      "invalid_argument",
      "--ca-cert/--client-cert/--client-key only apply to https:// gateways",
    );
  if (Boolean(clientCert) !== Boolean(clientKey))
    throw new OpenShellError("invalid_argument", "--client-cert and --client-key go together");
  if (https && !caCert)
    throw new OpenShellError(
      "invalid_argument",
      "an https:// gateway needs --ca-cert (and --client-cert/--client-key for mTLS); for a local gateway the CLI writes these itself: openshell gateway start",
    );
  if (https && caCert)
    ctx.registry.writeClientTls(name, {
      ca: readPem(caCert, "CA certificate"),
      ...(clientCert && clientKey
        ? { cert: readPem(clientCert, "client certificate"), key: readPem(clientKey, "client key") }
        : {}),
    });
  ctx.registry.write({
    name,
    gateway_endpoint: endpoint.origin,
    is_remote: !["127.0.0.1", "localhost", "[::1]"].includes(endpoint.hostname),
    gateway_port: Number(endpoint.port || (https ? 443 : 80)),
    auth_mode: https ? "mtls" : "plaintext",
    deployment: "registered",
  });
  ctx.registry.setActive(name);
  ctx.output.success(`Gateway '${name}' added (${endpoint.origin}) and set active`);
  return 0;
}
