/**
 * `metav1.Status` objects in the shape the real kube-apiserver writes them, for the fake API server
 * (tests only: no cluster can be had on these machines). Messages follow the apiserver's wording
 * (k8s.io/apimachinery/pkg/api/errors) so a client that shows them shows what a cluster would say.
 */

export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[] };
  code: number;
}

interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

/** What a Status names: `pods`, or `sandboxes.agents.x-k8s.io` for a grouped resource. */
export interface StatusTarget {
  group: string;
  plural: string;
  kind: string;
}

/** A failure the fake answers with; thrown inside the server and written as its Status. */
export class KubeStatusError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
}

function qualified(target: StatusTarget): string {
  return target.group ? `${target.plural}.${target.group}` : target.plural;
}

function failure(
  code: number,
  reason: string,
  message: string,
  details?: KubeStatus["details"],
): KubeStatusError {
  return new KubeStatusError({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  });
}

export function notFound(target: StatusTarget, name: string): KubeStatusError {
  return failure(404, "NotFound", `${qualified(target)} "${name}" not found`, {
    name,
    ...(target.group ? { group: target.group } : {}),
    kind: target.plural,
  });
}

/** An unknown path: what the apiserver says for a resource (or CRD) it does not serve. */
export function pathNotFound(): KubeStatusError {
  return failure(404, "NotFound", "the server could not find the requested resource", {});
}

export function alreadyExists(target: StatusTarget, name: string): KubeStatusError {
  return failure(409, "AlreadyExists", `${qualified(target)} "${name}" already exists`, {
    name,
    ...(target.group ? { group: target.group } : {}),
    kind: target.plural,
  });
}

export function conflict(target: StatusTarget, name: string): KubeStatusError {
  return failure(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualified(target)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, ...(target.group ? { group: target.group } : {}), kind: target.plural },
  );
}

export function forbidden(
  target: StatusTarget,
  name: string | undefined,
  verb: string,
  user: string,
  namespace: string | undefined,
): KubeStatusError {
  const scope = namespace ? `in the namespace "${namespace}"` : "at the cluster scope";
  const subject = name ? `${qualified(target)} "${name}"` : qualified(target);
  return failure(
    403,
    "Forbidden",
    `${subject} is forbidden: User "${user}" cannot ${verb} resource "${target.plural}" in API group "${target.group}" ${scope}`,
    { ...(name ? { name } : {}), ...(target.group ? { group: target.group } : {}), kind: target.plural },
  );
}

export function invalid(
  target: StatusTarget,
  name: string,
  field: string,
  value: unknown,
  why: string,
): KubeStatusError {
  const kind = target.group ? `${target.kind}.${target.group}` : target.kind;
  const message = `Invalid value: ${JSON.stringify(value)}: ${why}`;
  return failure(422, "Invalid", `${kind} "${name}" is invalid: ${field}: ${message}`, {
    name,
    ...(target.group ? { group: target.group } : {}),
    kind: target.kind,
    causes: [{ reason: "FieldValueInvalid", message, field }],
  });
}

export function badRequest(message: string): KubeStatusError {
  return failure(400, "BadRequest", message);
}

export function methodNotAllowed(): KubeStatusError {
  return failure(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
}

export function unsupportedMediaType(contentType: string): KubeStatusError {
  return failure(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${contentType})`,
  );
}

/** What a watch from a compacted resourceVersion gets (an ERROR event, or the HTTP status). */
export function expired(requested: number, oldest: number): KubeStatusError {
  return failure(410, "Expired", `too old resource version: ${requested} (${oldest})`);
}

export function success(target: StatusTarget, name: string, uid: string): KubeStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: { name, ...(target.group ? { group: target.group } : {}), kind: target.plural, uid },
    code: 200,
  };
}
