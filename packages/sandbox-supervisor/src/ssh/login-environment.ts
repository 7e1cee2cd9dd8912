import type { RunAsUser } from "./run-as-user.js";

/**
 * The VM image's Python venv (/sandbox/.venv) comes first, as in upstream's images: this covers
 * commands run without a login shell; login shells get it from the image's /etc/profile.d.
 */
export const LOGIN_PATH = "/sandbox/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const FORWARDABLE_NAMES = new Set(["TERM", "LANG", "COLORTERM"]);

/**
 * An `env` request with this name and the value "1" asks for the next exec to run in a plain shell
 * instead of the user's login shell: the CLI's file transfers use it, so nothing the sandbox user
 * put in ~/.bash_profile, ~/.profile, ~/.bashrc or $BASH_ENV can touch their data stream. It is a
 * request to the server, not a variable: the child never sees it.
 */
export const NO_LOGIN_SHELL_REQUEST = "OPENSHELL_NO_LOGIN_SHELL";

/** Variables that make a non-interactive bash or sh source a file before the command. */
const STARTUP_FILE_VARIABLES = ["BASH_ENV", "ENV"];
const PLAIN_SHELLS: ReadonlyArray<{ file: string; args: string[] }> = [
  { file: "/bin/bash", args: ["--noprofile", "--norc", "-c"] },
  { file: "/bin/sh", args: ["-c"] },
];

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

/** `<login shell> -lc <command>`, or with `plain` a bash (else sh) that reads no startup file. */
export function execCommandLine(
  user: RunAsUser,
  command: string,
  plain: boolean,
  isExecutable: (path: string) => boolean,
): { file: string; args: string[] } {
  if (!plain) return { file: user.shell, args: ["-lc", command] };
  const shell = PLAIN_SHELLS.find((candidate) => isExecutable(candidate.file)) ?? PLAIN_SHELLS[1]!;
  return { file: shell.file, args: [...shell.args, command] };
}

/** The environment for a plain-shell exec: without the variables that name startup files. */
export function withoutStartupFiles(env: Record<string, string>): Record<string, string> {
  const cleaned = { ...env };
  for (const name of STARTUP_FILE_VARIABLES) delete cleaned[name];
  return cleaned;
}
