import { ConnectError } from "@connectrpc/connect";
import { describeTarget, type GatewayTarget } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";

/** The start/resume hint for a gateway the CLI manages, a check hint for one it only knows. */
function gatewayStartHint(target: GatewayTarget): string {
  const managed = target.metadata?.deployment === "process" || target.metadata?.deployment === "docker";
  if (managed && target.name)
    return `Start it with: openshell gateway start${target.name === "openshell" ? "" : ` --name ${target.name}`}`;
  return "Check that the gateway is running and reachable from here, then retry (openshell status shows what the CLI sees).";
}

/**
 * OpenSSL's verification results (Node puts them in `code`) meaning the gateway's certificate is
 * not vouched for by the CA the CLI holds for it.
 */
const UNTRUSTED_SERVER_CERT = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
]);
const SERVER_CERT_DATES = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);
const SERVER_CERT_NAME = new Set(["ERR_TLS_CERT_ALTNAME_INVALID"]);
/** TLS alerts the gateway sends when it does not accept the client certificate (or none came). */
const CLIENT_CERT_REFUSED = new Set([
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED",
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
  "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED",
  "ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR",
]);
/** What OpenSSL reports when the other end does not speak TLS at all. */
const NOT_TLS = new Set(["ERR_SSL_WRONG_VERSION_NUMBER", "ERR_SSL_PACKET_LENGTH_TOO_LONG", "EPROTO"]);
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection closed",
};

/**
 * The Node/OpenSSL error codes on `error`'s cause chain: a transport failure has one (a
 * ConnectError's own `code` is a number, skipped); an error the gateway returned in a response has
 * none.
 */
export function transportErrorCodes(error: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let current = error; current instanceof Error && !seen.has(current); current = current.cause) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/**
 * Turns transport failures, recognised by their Node/OpenSSL error codes, into sentences that say
 * which gateway and what to do. An error the gateway itself returned keeps its status and message
 * whatever words it contains: it already says what went wrong (an exec's "SSH handshake" timeout is
 * not a TLS problem). Only a certificate the stored CA does not vouch for, or a client certificate
 * the gateway refuses, mentions `--recreate`, as the last resort and with what it discards.
 */
export function explainGatewayError(error: unknown, target: GatewayTarget): unknown {
  if (!(error instanceof ConnectError)) return error;
  const codes = transportErrorCodes(error);
  const has = (set: Set<string>) => codes.find((code) => set.has(code));
  const gateway = describeTarget(target);
  const mtlsDir = `~/.config/openshell/gateways/${target.name ?? "<name>"}/mtls`;
  const fail = (code: "unauthenticated" | "unavailable", message: string) =>
    new OpenShellError(code, message, { cause: error });

  const untrusted = has(UNTRUSTED_SERVER_CERT);
  if (untrusted)
    return fail(
      "unauthenticated",
      `Gateway ${gateway} presented a certificate that the CA stored for it (${mtlsDir}/ca.crt) did not sign (${untrusted}).\nEither another gateway now answers at this address, or this gateway's certificates were re-created.\nCheck the address (openshell status), then re-register the gateway with its current certificates (openshell gateway add).\n${recreateLastResort(target)}`,
    );
  const misnamed = has(SERVER_CERT_NAME);
  if (misnamed)
    return fail(
      "unauthenticated",
      `Gateway ${gateway} presented a certificate that is not valid for the host name ${target.endpoint.hostname} (${misnamed}).\nUse an address the certificate names (e.g. 127.0.0.1 or localhost for a local gateway), or re-register the gateway under its name (openshell gateway add).`,
    );
  const dated = has(SERVER_CERT_DATES);
  if (dated)
    return fail(
      "unauthenticated",
      `Gateway ${gateway} presented a certificate outside its validity period (${dated}).\nCheck this machine's clock and the gateway's, then retry.`,
    );
  const refused = has(CLIENT_CERT_REFUSED);
  if (refused)
    return fail(
      "unauthenticated",
      `Gateway ${gateway} did not accept this CLI's client certificate (${refused}).\nThe client certificate in ${mtlsDir} was not issued by this gateway's CA: re-register the gateway with its current client bundle (openshell gateway add).\n${recreateLastResort(target)}`,
    );
  const notTls = has(NOT_TLS);
  if (notTls)
    return fail(
      "unavailable",
      `Gateway ${gateway} did not answer with TLS (${notTls}).\nIf it serves plaintext, register it with an http:// address (openshell gateway add).`,
    );
  const tls = codes.find((code) => code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_"));
  if (tls)
    return fail(
      "unavailable",
      `TLS with gateway ${gateway} failed (${tls}).\nCheck that the address is the gateway's and that the CLI's files in ${mtlsDir} belong to it (openshell status).`,
    );
  const unreachable = codes.find((code) => code in UNREACHABLE);
  if (unreachable)
    return fail(
      "unavailable",
      `Gateway ${gateway} is not reachable (${UNREACHABLE[unreachable]}).\n${gatewayStartHint(target)}`,
    );
  return error;
}

function recreateLastResort(target: GatewayTarget): string {
  const name = target.name && target.name !== "openshell" ? ` --name ${target.name}` : "";
  return `Last resort, for a local gateway whose certificates are lost: openshell gateway start${name} --recreate (this discards every sandbox, the gateway's PKI and its secrets).`;
}
