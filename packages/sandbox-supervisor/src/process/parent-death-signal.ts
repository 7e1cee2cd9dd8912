import { isExecutableFile } from "./executable-file.js";

const SETPRIV_PATHS = ["/usr/bin/setpriv", "/bin/setpriv"];

/** util-linux's setpriv(1), when the image has it (Debian's does; minimal container images may not). */
export function findSetpriv(): string | undefined {
  return SETPRIV_PATHS.find(isExecutableFile);
}

/**
 * `file args` started so that the kernel SIGKILLs it when the supervisor dies (PR_SET_PDEATHSIG via
 * `setpriv --pdeathsig`, kept across the exec of a program that is not set-uid): a helper the
 * supervisor starts must not outlive a supervisor that was SIGKILLed. Unchanged when there is no
 * setpriv; the helper then ends at its next write to the supervisor's closed pipe.
 */
export function endedWithSupervisor(file: string, args: string[]): { file: string; args: string[] } {
  const setpriv = findSetpriv();
  return setpriv === undefined
    ? { file, args }
    : { file: setpriv, args: ["--pdeathsig", "SIGKILL", "--", file, ...args] };
}
