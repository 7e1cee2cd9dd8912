import { checkEnvironmentEntry, OpenShellError } from "@openshell/core";

/** Upstream's ExecSandbox limits (grpc/sandbox.rs). */
const ExecLimits = {
  maxArgs: 1024,
  maxArgBytes: 32 * 1024,
  maxEnvValueBytes: 32 * 1024,
  maxWorkdirBytes: 4096,
  maxCommandBytes: 256 * 1024,
} as const;

const SAFE_WORD = /^[A-Za-z0-9./_-]+$/;
const FORBIDDEN_CHARS = /[\0\r\n]/;

/** POSIX single-quote escaping: safe words stay bare, the empty string becomes ''. */
export function shellEscape(word: string): string {
  if (word === "") return "''";
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export interface ExecCommandInput {
  command: string[];
  workdir: string;
  environment: Record<string, string>;
}

/**
 * Builds the one command line the sandbox's shell runs:
 * `[cd <workdir> && ]KEY=value... arg0 arg1 ...`, env keys sorted, every part escaped.
 */
export function buildExecCommand(input: ExecCommandInput): string {
  validateExecInput(input);
  const env = Object.keys(input.environment)
    .sort()
    .map((key) => `${key}=${shellEscape(input.environment[key] as string)}`);
  const line = [...env, ...input.command.map(shellEscape)].join(" ");
  const full = input.workdir ? `cd ${shellEscape(input.workdir)} && ${line}` : line;
  if (Buffer.byteLength(full) > ExecLimits.maxCommandBytes) {
    throw new OpenShellError(
      "invalid_argument",
      `command is too long (${Buffer.byteLength(full)} bytes, limit ${ExecLimits.maxCommandBytes}); pass large data through stdin`,
    );
  }
  return full;
}

function validateExecInput(input: ExecCommandInput): void {
  if (input.command.length === 0) throw new OpenShellError("invalid_argument", "command is required");
  if (input.command.length > ExecLimits.maxArgs) {
    throw new OpenShellError("invalid_argument", `too many arguments (limit ${ExecLimits.maxArgs})`);
  }
  input.command.forEach((arg, index) => {
    if (Buffer.byteLength(arg) > ExecLimits.maxArgBytes) {
      throw new OpenShellError(
        "invalid_argument",
        `argument ${index} exceeds ${ExecLimits.maxArgBytes} bytes`,
      );
    }
    if (FORBIDDEN_CHARS.test(arg)) {
      throw new OpenShellError("invalid_argument", `argument ${index} contains NUL, CR or LF`);
    }
  });
  for (const [key, value] of Object.entries(input.environment)) {
    checkEnvironmentEntry("environment", key, value);
    if (Buffer.byteLength(value) > ExecLimits.maxEnvValueBytes) {
      throw new OpenShellError(
        "invalid_argument",
        `environment value of ${key} exceeds ${ExecLimits.maxEnvValueBytes} bytes`,
      );
    }
  }
  if (Buffer.byteLength(input.workdir) > ExecLimits.maxWorkdirBytes) {
    throw new OpenShellError("invalid_argument", `workdir exceeds ${ExecLimits.maxWorkdirBytes} bytes`);
  }
  if (FORBIDDEN_CHARS.test(input.workdir)) {
    throw new OpenShellError("invalid_argument", "workdir contains NUL, CR or LF");
  }
}
