import { Code, ConnectError } from "@connectrpc/connect";
import { OpenShellError } from "@openshell/core";
import { describeTarget, type GatewayTarget } from "./gateway-target.js";

/** The start/resume hint for a gateway the CLI manages, a check hint for one it only knows. */
export function gatewayStartHint(target: GatewayTarget): string {
  const managed = target.metadata?.deployment === "process" || target.metadata?.deployment === "docker";
  if (managed && target.name)
    return `Start it with: openshell gateway start${target.name === "openshell" ? "" : ` --name ${target.name}`}`;
  return "Check that the gateway is running and reachable from here, then retry (openshell status shows what the CLI sees).";
}

const TLS_FAILURE = /certificate|self[- ]signed|handshake|ssl|tls|alert/i;

/**
 * Turns transport failures into sentences that say which gateway and what to do; RPC errors the
 * gateway reported keep their message (it already says what went wrong).
 */
export function explainGatewayError(error: unknown, target: GatewayTarget): unknown {
  if (!(error instanceof ConnectError)) return error;
  const detail = error.rawMessage;
  if (error.code === Code.Unavailable || error.code === Code.Unknown || error.code === Code.Internal) {
    if (TLS_FAILURE.test(detail))
      return new OpenShellError(
        "unauthenticated",
        `TLS with gateway ${describeTarget(target)} failed: ${detail}.\nThe client certificates in ~/.config/openshell/gateways/${target.name ?? "<name>"}/mtls do not match this gateway; re-register it (openshell gateway add) or recreate a local one (openshell gateway start --recreate).`,
        { cause: error },
      );
    if (
      error.code === Code.Unavailable ||
      /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|socket hang up/i.test(detail)
    )
      return new OpenShellError(
        "unavailable",
        `Gateway ${describeTarget(target)} is not reachable (${shortDetail(detail)}).\n${gatewayStartHint(target)}`,
        { cause: error },
      );
  }
  if (error.code === Code.Unauthenticated || error.code === Code.PermissionDenied)
    return new OpenShellError(
      "unauthenticated",
      `Gateway ${describeTarget(target)} refused this client: ${detail}.\nRe-register it with its client certificates (openshell gateway add), or for a local gateway run: openshell gateway start --recreate`,
      { cause: error },
    );
  return error;
}

function shortDetail(detail: string): string {
  const refused = /ECONNREFUSED/.exec(detail);
  if (refused) return "connection refused";
  return detail.length > 160 ? `${detail.slice(0, 157)}...` : detail;
}

export function isGatewayUnreachable(error: unknown): boolean {
  return error instanceof OpenShellError && error.code === "unavailable";
}
