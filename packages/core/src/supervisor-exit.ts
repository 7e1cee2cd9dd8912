/**
 * The exit codes of `openshell-sandbox` besides its workload's own (§3.3 step 16: the supervisor
 * exits with its workload's exit code, 128+n when a signal n ended it). Declared once here: the VM
 * driver tells a supervisor that failed closed from a crash by the code the guest init reports.
 */
export const SUPERVISOR_EXIT = Object.freeze({
  /** Flags or environment invalid (nothing started). */
  usage: 2,
  /**
   * The supervisor could not start the sandbox and failed closed (no confinement launcher, its
   * `--check` failed, the network namespace or the sandbox CA could not be set up, the workload
   * could not be confined): it logged a `fatal` line with the reason and started no child.
   * Starting it again the same way fails the same way. (sysexits' EX_CONFIG.)
   */
  failedClosed: 78,
  /** The workload ran past `--timeout` and was killed (as coreutils' timeout). */
  workloadTimeout: 124,
});
