import { isIP } from "node:net";
import {
  type CompiledEndpoint,
  type ConnectBinary,
  checkResolvedAddresses,
  compileNetworkPolicy,
  isInternalAddress,
  l7DeniedBody,
  POLICY_HEADER,
  policyDeniedBody,
  type SsrfDenyKind,
  ssrfDeniedBody,
} from "@openshell/policy";
import type { sandboxv1 } from "@openshell/proto";

/** A CONNECT or forward-proxy destination as the client named it (host lower-cased). */
export interface ConnectTarget {
  host: string;
  port: number;
}

export type EndpointDecision = { allowed: true; policyName: string; endpoint: CompiledEndpoint };

type ConnectDecision = EndpointDecision | { allowed: false; reason: string; policyName?: string };

type AddressCheck = { allowed: true } | { allowed: false; kind: SsrfDenyKind; reason: string };

/**
 * The installed policy's network part as the proxy asks it: `@openshell/policy`'s compiled matcher
 * (built once per install, in the config sync's validation) and its 403 bodies. Lives in the
 * policy part of the bundle (`policy-rules.ts`); the proxy holds only the interface.
 */
export interface NetworkDecisions {
  readonly warnings: readonly string[];
  evaluateConnect(input: { host: string; port: number; binary: ConnectBinary }): ConnectDecision;
  /**
   * SSRF after DNS (§3.8). The forward-proxy path (plain http://) also requires every address to be
   * a private one the endpoint's `allowed_ips` names: a public destination is 403 there.
   */
  checkResolvedAddresses(
    endpoint: CompiledEndpoint,
    target: ConnectTarget,
    addresses: string[],
    options: { forwardProxy: boolean },
  ): AddressCheck;
  policyDeniedBody(target: ConnectTarget): string;
  ssrfDeniedBody(target: ConnectTarget, kind: SsrfDenyKind): string;
  /** The body of an L7 `enforce` 403 (upstream's), sent with `policyHeader: <ruleKey>`. */
  l7DeniedBody(ruleKey: string, method: string, target: string, reason: string): string;
  /** `X-OpenShell-Policy`. */
  readonly policyHeader: string;
}

/** Compiles `policy`'s network part; throws (the policy is refused) when it does not compile. */
export function createNetworkDecisions(policy: sandboxv1.SandboxPolicy): NetworkDecisions {
  const compiled = compileNetworkPolicy(policy);
  return {
    warnings: compiled.warnings,
    evaluateConnect(input) {
      const decision = compiled.evaluateConnect(input);
      if (decision.allowed) {
        return { allowed: true, policyName: decision.policyName, endpoint: decision.endpoint };
      }
      return { allowed: false, reason: decision.reason, policyName: decision.policyName };
    },
    checkResolvedAddresses(endpoint, target, addresses, options) {
      const check = checkResolvedAddresses(endpoint, target.host, target.port, addresses);
      if (!check.allowed || !options.forwardProxy) return check;
      const publicAddress = addresses.find((address) => !isInternalAddress(address));
      if (publicAddress !== undefined || (endpoint.allowedIpList === undefined && isIP(target.host) === 0)) {
        return {
          allowed: false,
          kind: "allowed_ips",
          reason: `plain http:// is forwarded only to private addresses the endpoint's allowed_ips names (${target.host} resolves to ${publicAddress ?? addresses.join(", ")}); use CONNECT (https://)`,
        };
      }
      return check;
    },
    policyDeniedBody: (target) => policyDeniedBody(target.host, target.port),
    ssrfDeniedBody: (target, kind) => ssrfDeniedBody(target.host, target.port, kind),
    l7DeniedBody,
    policyHeader: POLICY_HEADER,
  };
}
