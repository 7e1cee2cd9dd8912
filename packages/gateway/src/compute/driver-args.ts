import type { GatewayConfig } from "../config/gateway-config.js";

/** Flags each driver binary takes beyond the common ones (--bind-socket, --state-dir, --log-level). */
export function driverArgs(config: GatewayConfig): string[] {
  switch (config.driver) {
    case "vm": {
      const args = [
        "--openshell-endpoint",
        config.grpcEndpoint ?? "",
        "--vcpus",
        String(config.vm.vcpus),
        "--mem-mib",
        String(config.vm.memMib),
      ];
      args.push(...guestTlsArgs(config));
      return args;
    }
    case "docker": {
      const args = ["--openshell-endpoint", config.grpcEndpoint ?? ""];
      if (config.sandboxImage) args.push("--sandbox-image", config.sandboxImage);
      args.push(...guestTlsArgs(config));
      return args;
    }
    case "kubernetes": {
      const args = ["--namespace", config.sandboxNamespace];
      if (config.sandboxImage) args.push("--sandbox-image", config.sandboxImage);
      if (config.sandboxImagePullPolicy)
        args.push("--sandbox-image-pull-policy", config.sandboxImagePullPolicy);
      if (config.grpcEndpoint) args.push("--openshell-endpoint", config.grpcEndpoint);
      if (config.clientTlsSecretName) args.push("--client-tls-secret", config.clientTlsSecretName);
      return args;
    }
    default:
      return [];
  }
}

/** The client certificate a VM guest's or container's supervisor presents to the gateway (mTLS). */
function guestTlsArgs(config: GatewayConfig): string[] {
  const tls = config.vm.tls;
  return tls ? ["--guest-tls-ca", tls.ca, "--guest-tls-cert", tls.cert, "--guest-tls-key", tls.key] : [];
}
