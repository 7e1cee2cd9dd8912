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
    driver: option.choice(
      "--driver <driver>",
      "compute driver: vm (microVMs), docker (containers on DOCKER_HOST; needs OPENSHELL_SANDBOX_IMAGE) kubernetes (pods in a cluster; settings from OPENSHELL_* env, see the README) or auto (vm when KVM boots a guest, else docker when a daemon answers, else vm under TCG; `gateway info` says why); default: the gateway's last one, else vm",
      ["vm", "docker", "kubernetes", "auto"],
    ),
    drivers: option.string("--drivers <driver>", "same as --driver", {
      complete: ["vm", "docker", "kubernetes", "auto"],
    }),
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
