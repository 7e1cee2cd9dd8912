import { OpenShellError } from "./errors.js";

/** What a POSIX shell accepts as a variable name (and what the VM's guest init passes on). */
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A value travels as one `KEY=value` line (VM guest environment, exec command line). */
const LINE_BREAK_OR_NUL = /[\0\r\n]/;

/** Whether `name` is a variable name a POSIX shell accepts. */
export function isEnvironmentName(name: string): boolean {
  return ENV_NAME_PATTERN.test(name);
}

/**
 * The rule every environment entry a client sends must pass (the gateway's CreateSandbox spec and
 * template environment, ExecSandbox's environment, and a driver's own check of what it passes
 * on). `field` names the map in the error, e.g. "spec.environment".
 */
export function checkEnvironmentEntry(field: string, name: string, value: string): void {
  if (!isEnvironmentName(name)) {
    throw new OpenShellError(
      "invalid_argument",
      `${field} key '${name}' is invalid: use letters, digits and _ and do not start with a digit`,
    );
  }
  if (LINE_BREAK_OR_NUL.test(value)) {
    throw new OpenShellError(
      "invalid_argument",
      `${field} value of ${name} contains NUL, CR or LF; values must be a single line`,
    );
  }
}
