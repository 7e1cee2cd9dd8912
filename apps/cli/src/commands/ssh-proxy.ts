import { defineCommand, option } from "../command-spec/define-command.js";

/**
 * Token mode (`--gateway URL --sandbox-id ID --token T`, what connect, exec and upload write) or
 * name mode (`--gateway-name N --name SANDBOX`, what ssh-config writes).
 */
export const sshProxyCommand = defineCommand({
  path: "ssh-proxy",
  hidden: true,
  description: "OpenSSH ProxyCommand: tunnels stdin/stdout to a sandbox through the gateway",
  arguments: {},
  options: {
    // The root's -g/--gateway has the same long flag and parses it first: the URL arrives in
    // `globals.gateway`. Declared here for this command's help.
    gateway: option.string("--gateway <url>", "token mode: http(s)://host:port/connect/ssh", {
      complete: "none",
    }),
    sandboxId: option.string("--sandbox-id <id>", "token mode: sandbox id", { complete: "none" }),
    token: option.string("--token <token>", "token mode: SSH session token", { complete: "none" }),
    gatewayName: option.string(
      "--gateway-name <name>",
      "gateway whose client certificates to use; with --name: name mode",
      { complete: "gateways" },
    ),
    name: option.string("--name <sandbox>", "name mode: sandbox name (a fresh session per connection)", {
      complete: "sandboxes",
    }),
    tlsCa: option.string("--tls-ca <file>", "CA of the gateway's certificate", { complete: "files" }),
    tlsCert: option.string("--tls-cert <file>", "client certificate for mTLS", { complete: "files" }),
    tlsKey: option.string("--tls-key <file>", "its key", { complete: "files" }),
  },
});
