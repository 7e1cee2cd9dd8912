import { OpenShellError } from "@openshell/core";

const RESERVED_PREFIX = "OPENSHELL_";

/**
 * Names outside OPENSHELL_* that reach the sandbox supervisor (a root Node process) and that a
 * sandbox's environment must not replace. HOME, PATH, USER, TERM and LANG are not here: the
 * supervisor is started by absolute paths and builds every shell's environment from scratch.
 */
const RESERVED_NAMES: ReadonlyMap<string, string> = new Map([
  ["NODE_OPTIONS", "Node reads it before the sandbox supervisor starts"],
  ["NODE_COMPILE_CACHE", "the VM's init sets it for the sandbox supervisor"],
  [
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "it would turn off the supervisor's check of the gateway's TLS certificate",
  ],
]);

/**
 * Rejects names the system sets itself in a sandbox: every OPENSHELL_* (the drivers pass the
 * supervisor its endpoint, sandbox id and name, credential, SSH socket, log level and TLS files
 * under these names; a value from the spec would replace them) and RESERVED_NAMES.
 */
export function checkSandboxEnvironmentName(field: string, name: string): void {
  if (name.startsWith(RESERVED_PREFIX)) {
    throw new OpenShellError(
      "invalid_argument",
      `${field} sets ${name}, which is reserved: names starting with ${RESERVED_PREFIX} are set by OpenShell itself (the sandbox supervisor's endpoint, identity and credential); use another name`,
    );
  }
  const reason = RESERVED_NAMES.get(name);
  if (reason) {
    throw new OpenShellError(
      "invalid_argument",
      `${field} sets ${name}, which is reserved: ${reason}; use another name`,
    );
  }
}
