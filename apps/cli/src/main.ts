import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { OpenShellError } from "@openshell/core";
import { runSshProxy } from "./ssh/ssh-proxy.js";

const VERSION = process.env.OPENSHELL_BUILD_VERSION ?? "0.1.0";

const USAGE = `Usage: openshell <command> [options]

Commands:
  ssh-proxy     ProxyCommand for OpenSSH: tunnels stdin/stdout to a sandbox through the gateway

Options:
  -h, --help    show help
  --version     print the version
`;

const SSH_PROXY_USAGE = `Usage: openshell ssh-proxy --gateway URL --sandbox-id ID --token TOKEN

Used as an OpenSSH ProxyCommand: opens CONNECT <path> on the gateway with the SSH session token
(from CreateSshSession) and pipes stdin/stdout through it. Retries for up to 60 s while the
sandbox is not ready (HTTP 412).

  --gateway URL      http(s)://host:port/connect/ssh
  --sandbox-id ID    sandbox id
  --token TOKEN      SSH session token
  --tls-ca FILE      CA that signed the gateway's certificate (https gateways)
  --tls-cert FILE    client certificate for mTLS gateways
  --tls-key FILE     its key
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "-h" || command === "--help") {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  if (command === "--version") {
    process.stdout.write(`openshell ${VERSION}\n`);
    return 0;
  }
  if (command === "ssh-proxy") {
    const { values } = parseArgs({
      args: rest,
      strict: true,
      options: {
        gateway: { type: "string" },
        "sandbox-id": { type: "string" },
        token: { type: "string" },
        "gateway-name": { type: "string" },
        "tls-ca": { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      process.stdout.write(SSH_PROXY_USAGE);
      return 0;
    }
    if (!values.gateway || !values["sandbox-id"] || !values.token) {
      throw new OpenShellError(
        "invalid_argument",
        `--gateway, --sandbox-id and --token are required\n\n${SSH_PROXY_USAGE}`,
      );
    }
    await runSshProxy({
      url: new URL(values.gateway),
      sandboxId: values["sandbox-id"],
      token: values.token,
      tls: {
        ...(values["tls-ca"] ? { ca: readFileSync(values["tls-ca"]) } : {}),
        ...(values["tls-cert"] ? { cert: readFileSync(values["tls-cert"]) } : {}),
        ...(values["tls-key"] ? { key: readFileSync(values["tls-key"]) } : {}),
      },
      stdin: process.stdin,
      stdout: process.stdout,
    });
    return 0;
  }
  throw new OpenShellError("invalid_argument", `unknown command '${command}'\n\n${USAGE}`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`openshell: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
