import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayAddCommand = defineCommand({
  path: "gateway add",
  description: "register a gateway that runs elsewhere",
  arguments: {
    endpoint: argument.required("http://host:port or https://host:port", { complete: "none" }),
  },
  options: {
    name: option.string("--name <name>", "name for it (default: derived from the host)", {
      complete: "none",
    }),
    caCert: option.string("--ca-cert <file>", "CA that signed the gateway's certificate (https)", {
      complete: "files",
    }),
    clientCert: option.string("--client-cert <file>", "client certificate for mTLS", { complete: "files" }),
    clientKey: option.string("--client-key <file>", "key of the client certificate", { complete: "files" }),
  },
});
