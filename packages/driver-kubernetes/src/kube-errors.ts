import { type ErrorCode, OpenShellError } from "@openshell/core";

/** §5.1: every API call is bounded; this is the message a stuck call ends with. */
export const KUBE_API_TIMEOUT_MS = 30_000;
const KUBE_API_TIMEOUT_MESSAGE = "timed out after 30s waiting for Kubernetes API";

/** What an API call was doing, for the message: verb and resource as RBAC names them. */
export interface KubeCall {
  verb: "get" | "list" | "watch" | "create" | "patch" | "delete";
  /** RBAC resource, e.g. `sandboxes.agents.x-k8s.io`, `secrets`, `persistentvolumeclaims`. */
  resource: string;
  namespace?: string;
  name?: string;
}

/** The parts of a Kubernetes `Status` object (or a failed HTTP response) that classify a failure. */
export interface KubeFailure {
  httpStatus: number | undefined;
  /** `Status.reason`: NotFound, AlreadyExists, Conflict, Forbidden, Expired, Gone, Invalid, … */
  reason: string | undefined;
  message: string | undefined;
}

const NETWORK_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * The HTTP status and `Status.reason` of a failure thrown by @kubernetes/client-node: an
 * `ApiException` (`code`, `body` as text or parsed), the `Watch`'s error (`statusCode`), or a watch
 * `ERROR` event's `Status` object itself. Undefined for anything that is not an API answer.
 */
export function kubeFailure(error: unknown): KubeFailure | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const record = error as Record<string, unknown>;
  if (record.kind === "Status") return statusFields(record, numberOr(record.code));
  const httpStatus = numberOr(record.code) ?? numberOr(record.statusCode);
  if (httpStatus === undefined || httpStatus < 100) return undefined;
  const body = parseBody(record.body);
  if (body) return statusFields(body, httpStatus);
  return { httpStatus, reason: undefined, message: undefined };
}

/** True when the failure is `410 Gone` / reason `Expired`: the resourceVersion is too old to watch from. */
export function isGone(error: unknown): boolean {
  const failure = kubeFailure(error);
  return failure?.httpStatus === 410 || failure?.reason === "Expired" || failure?.reason === "Gone";
}

/** True when an API call was aborted by its timeout (§5.1's 30 s). */
export function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
}

/** Node's socket / TLS error code behind a failed fetch (`TypeError: fetch failed`, cause `ECONNREFUSED`). */
function networkErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Turns a failed API call into the project's error: classified by HTTP status and `Status.reason`
 * (never by message text), with a message naming the call and, where there is one, the fix.
 */
export function kubeError(error: unknown, call: KubeCall, fixes: KubeFixes = DEFAULT_FIXES): OpenShellError {
  if (error instanceof OpenShellError) return error;
  const what = describeCall(call);
  if (isTimeout(error)) {
    return new OpenShellError("deadline_exceeded", `${what}: ${KUBE_API_TIMEOUT_MESSAGE}`, { cause: error });
  }
  const failure = kubeFailure(error);
  if (!failure) {
    const network = networkErrorCode(error);
    if (network) {
      return new OpenShellError(
        "unavailable",
        `${what}: the Kubernetes API is unreachable (${network}). ${fixes.unreachable}`,
        { cause: error },
      );
    }
    const message = error instanceof Error ? error.message : String(error);
    return new OpenShellError("internal", `${what}: ${message}`, { cause: error });
  }
  const code = codeFor(failure);
  const detail = failure.message ? `: ${failure.message}` : ` (HTTP ${failure.httpStatus ?? "?"})`;
  let fix = "";
  if (code === "permission_denied") fix = ` ${fixes.forbidden(call)}`;
  if (code === "unauthenticated") fix = ` ${fixes.unauthenticated}`;
  return new OpenShellError(code, `${what}${detail}.${fix}`, { cause: error });
}

/** What to tell the operator for failures that have a fix outside the driver. */
export interface KubeFixes {
  unreachable: string;
  unauthenticated: string;
  forbidden: (call: KubeCall) => string;
}

const DEFAULT_FIXES: KubeFixes = {
  unreachable:
    "Check the cluster address in the kubeconfig (--kubeconfig, --context) and that the cluster is up.",
  unauthenticated:
    "The credentials in the kubeconfig (or the service account token) were refused; renew them.",
  forbidden: (call) => forbiddenFix(call),
};

/** The fix for a 403: which permission is missing and where the Role that grants it is. */
function forbiddenFix(call: KubeCall): string {
  const scope = call.namespace ? `in namespace '${call.namespace}'` : "cluster-wide";
  return `The driver's identity may not ${call.verb} ${call.resource} ${scope}: apply the driver's Role and RoleBinding (deploy/kubernetes/base/rbac.yaml, role 'openshell-driver') to its service account, or grant '${call.verb}' on '${call.resource}'.`;
}

function codeFor(failure: KubeFailure): ErrorCode {
  switch (failure.reason) {
    case "NotFound":
      return "not_found";
    case "AlreadyExists":
      return "already_exists";
    case "Conflict":
      return "aborted";
    case "Forbidden":
      return "permission_denied";
    case "Unauthorized":
      return "unauthenticated";
    case "Invalid":
    case "BadRequest":
      return "invalid_argument";
    case "Expired":
    case "Gone":
      return "aborted";
    case "Timeout":
    case "ServerTimeout":
      return "deadline_exceeded";
    case "TooManyRequests":
    case "ServiceUnavailable":
      return "unavailable";
  }
  const status = failure.httpStatus ?? 0;
  if (status === 400 || status === 422) return "invalid_argument";
  if (status === 401) return "unauthenticated";
  if (status === 403) return "permission_denied";
  if (status === 404) return "not_found";
  if (status === 409) return "aborted";
  if (status === 410) return "aborted";
  if (status === 504) return "deadline_exceeded";
  if (status === 429 || status >= 500) return "unavailable";
  return "internal";
}

function describeCall(call: KubeCall): string {
  const target = call.name ? ` ${call.name}` : "";
  const where = call.namespace ? ` in namespace ${call.namespace}` : "";
  return `Kubernetes ${call.verb} ${call.resource}${target}${where}`;
}

function statusFields(status: Record<string, unknown>, httpStatus: number | undefined): KubeFailure {
  return {
    httpStatus: httpStatus ?? numberOr(status.code),
    reason: typeof status.reason === "string" && status.reason ? status.reason : undefined,
    message: typeof status.message === "string" && status.message ? status.message : undefined,
  };
}

function parseBody(body: unknown): Record<string, unknown> | undefined {
  if (typeof body === "object" && body !== null) return body as Record<string, unknown>;
  if (typeof body !== "string" || !body.startsWith("{")) return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function numberOr(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}
