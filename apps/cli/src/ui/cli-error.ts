import { OpenShellError } from "@openshell/core";
import { terminalSafe } from "./terminal-safe.js";

/** Documented exit codes (README "CLI exit codes"); a command run in a sandbox passes its own through. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  gatewayUnavailable: 3,
  notFound: 4,
  notReady: 5,
  interrupted: 130,
} as const;

function exitCodeFor(error: OpenShellError): number {
  switch (error.code) {
    case "invalid_argument":
    case "config_invalid":
      return ExitCode.usage;
    case "unavailable":
      return ExitCode.gatewayUnavailable;
    case "not_found":
      return ExitCode.notFound;
    case "failed_precondition":
    case "deadline_exceeded":
      return ExitCode.notReady;
    case "canceled":
      return ExitCode.interrupted;
    default:
      return ExitCode.failure;
  }
}

/**
 * One sentence (and the next step) for anything a command throws; the stack only with -v. Messages
 * quote the gateway and the sandbox (remote stderr, condition messages), so they are made
 * terminal-safe; line breaks and tabs stay, the messages are multi-line on purpose.
 */
export function renderError(error: unknown, verbose: boolean): { text: string; exitCode: number } {
  const normalized = OpenShellError.from(error);
  const text =
    verbose && error instanceof Error && error.stack
      ? `${normalized.message}\n\n${error.stack}`
      : normalized.message;
  return { text: terminalSafe(text, { multiline: true }), exitCode: exitCodeFor(normalized) };
}
