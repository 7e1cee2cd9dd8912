import { Code, ConnectError } from "@connectrpc/connect";
import { OpenShellError } from "@openshell/core";

/** What a policy or settings command was doing when the gateway refused it. */
export interface PolicyErrorContext {
  /** The sandbox, for sandbox-scoped calls. */
  sandbox?: string;
  /** A revision asked for by number (`policy get --rev N`). */
  version?: number;
  /** The setting key of `settings set/delete`. */
  key?: string;
  global?: boolean;
}

/**
 * A gateway error of the policy RPCs in the CLI's words, with the next step; the exit code follows
 * the gRPC code as everywhere (INVALID_ARGUMENT 2, NOT_FOUND 4, FAILED_PRECONDITION 5). Anything
 * that is not a gateway refusal is passed on untouched (transport errors are explained later).
 */
export function explainPolicyError(error: unknown, context: PolicyErrorContext): unknown {
  if (!(error instanceof ConnectError)) return error;
  const message = error.rawMessage;
  const { sandbox, version, key } = context;
  const fail = (code: ConstructorParameters<typeof OpenShellError>[0], text: string) =>
    new OpenShellError(code, text, { cause: error });
  switch (error.code) {
    case Code.NotFound:
      if (/^sandbox .* not found/.test(message) && sandbox)
        return fail("not_found", `sandbox '${sandbox}' not found (see: openshell sandbox list)`);
      if (message.includes("no global policy revision"))
        return fail(
          "not_found",
          version
            ? `global policy version ${version} not found (see: openshell policy list --global)`
            : "no global policy has been set (set one with: openshell policy set --global --policy FILE)",
        );
      if (message.includes("no policy revision") && sandbox)
        return fail(
          "not_found",
          version
            ? `sandbox '${sandbox}' has no policy version ${version} (see: openshell policy list ${sandbox})`
            : `sandbox '${sandbox}' has no policy revision yet; set one with: openshell policy set ${sandbox} --policy FILE`,
        );
      return fail("not_found", message);
    case Code.FailedPrecondition:
      if (message.startsWith("policy is managed globally"))
        return fail(
          "failed_precondition",
          "policy is managed globally: a global policy overrides every sandbox's policy and blocks sandbox policy updates; delete it with: openshell policy delete --global",
        );
      if (message.startsWith("setting '") && message.includes("managed globally") && key)
        return fail(
          "failed_precondition",
          `setting '${key}' is managed globally, which overrides every sandbox's value; change it with --global, or delete it first with: openshell settings delete --key ${key} --global`,
        );
      return fail("failed_precondition", message);
    case Code.InvalidArgument:
      return fail("invalid_argument", `the gateway refused the request (nothing was changed): ${message}`);
    case Code.Aborted:
      return fail("aborted", `${message}; another update changed the policy at the same time, retry`);
    default:
      return error;
  }
}
