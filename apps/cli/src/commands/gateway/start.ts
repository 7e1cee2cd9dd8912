import { defineCommand, option } from "../../command-spec/define-command.js";

export const gatewayStartCommand = defineCommand({
  path: "gateway start",
  description: "start (or resume) a local gateway, as a background process or in Docker, and make it active",
  arguments: {},
  options: {
    name: option.string(
      "--name <name>",
      "gateway name (default: -g, OPENSHELL_GATEWAY, the active gateway, or 'openshell')",
      { complete: "gateways" },
    ),
    port: option.integer(
      "--port <port>",
      "API port on 127.0.0.1 (default: the stored port, OPENSHELL_GATEWAY_PORT or 8080)",
      { complete: "none" },
    ),
    drivers: option.string(
      "--drivers <driver>",
      "compute driver: vm (microVMs) or kubernetes (pods in a cluster; its settings come from OPENSHELL_* env, see the README)",
      { default: "vm", complete: ["vm", "kubernetes"] },
    ),
    plaintext: option.flag("--plaintext", "serve plain HTTP/2 instead of mTLS (local experiments only)"),
    recreate: option.flag(
      "--recreate",
      "throw away this gateway's state (sandboxes, PKI, secrets) and start fresh",
    ),
    docker: option.flag(
      "--docker",
      "run the gateway in a Docker container (volume, network, restart policy unless-stopped)",
    ),
    vmVcpus: option.integer("--vm-vcpus <n>", "vCPUs per sandbox VM", { complete: "none" }),
    vmMemMib: option.integer("--vm-mem-mib <n>", "memory per sandbox VM in MiB", { complete: "none" }),
  },
});
