import type { RunAsUser } from "./run-as-user.js";

export const LOGIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const FORWARDABLE_NAMES = new Set(["TERM", "LANG", "COLORTERM"]);

/**
 * Which `env` requests from the client are applied. Locale and terminal settings only (what
 * OpenSSH's default AcceptEnv passes) plus OPENSHELL_*: anything else, e.g. LD_PRELOAD or PATH,
 * could change what the login shell runs, so it is acknowledged and dropped.
 */
export function isForwardableEnvName(name: string): boolean {
  return FORWARDABLE_NAMES.has(name) || /^LC_[A-Z_]+$/.test(name) || /^OPENSHELL_[A-Z0-9_]*$/.test(name);
}

export interface LoginEnvironmentInput {
  user: RunAsUser;
  /** TERM: the pty-req terminal when there is a PTY. */
  term: string | undefined;
  /** Operator-provided variables (supervisor options). */
  extra: Readonly<Record<string, string>>;
  /** Variables from accepted `env` requests. */
  requested: Readonly<Record<string, string>>;
}

/** A login environment built from scratch: nothing of the supervisor's own environment leaks in. */
export function buildLoginEnvironment(input: LoginEnvironmentInput): Record<string, string> {
  const { user } = input;
  const env: Record<string, string> = {
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
    PATH: LOGIN_PATH,
    TERM: "dumb",
    ...input.extra,
    ...input.requested,
  };
  if (input.term) env.TERM = input.term;
  env.OPENSHELL_SANDBOX = "1";
  return env;
}
