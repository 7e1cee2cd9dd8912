import { Code, ConnectError } from "@connectrpc/connect";

/** Machine codes for every failure the system reports; each maps to one gRPC status. */
export const ErrorCodes = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  aborted: Code.Aborted,
  unimplemented: Code.Unimplemented,
  canceled: Code.Canceled,
  internal: Code.Internal,
  config_invalid: Code.InvalidArgument,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/**
 * The one error type of the project: a machine `code` plus a message for humans that says what went
 * wrong and, where there is one, how to fix it.
 */
export class OpenShellError extends Error {
  override readonly name = "OpenShellError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get connectCode(): Code {
    return ErrorCodes[this.code];
  }

  toConnectError(): ConnectError {
    return new ConnectError(this.message, this.connectCode, undefined, undefined, this);
  }

  /** Normalises anything thrown into an OpenShellError (ConnectErrors keep their status). */
  static from(error: unknown, fallback: ErrorCode = "internal"): OpenShellError {
    if (error instanceof OpenShellError) return error;
    if (error instanceof ConnectError) {
      return new OpenShellError(codeFromConnect(error.code), error.rawMessage, { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new OpenShellError(fallback, message, { cause: error });
  }
}

function codeFromConnect(code: Code): ErrorCode {
  for (const [name, value] of Object.entries(ErrorCodes)) {
    if (value === code && name !== "config_invalid") return name as ErrorCode;
  }
  return "internal";
}

/** Maps an error to what goes over the wire; unknown errors become INTERNAL without leaking stacks. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  return OpenShellError.from(error).toConnectError();
}
