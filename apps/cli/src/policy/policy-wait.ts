import { setTimeout as sleep } from "node:timers/promises";
import type { OpenShellClient } from "@openshell/bootstrap";
import { PolicyStatus } from "@openshell/proto";
import type { Output } from "../ui/output.js";
import { terminalSafe } from "../ui/terminal-safe.js";
import { explainPolicyError } from "./policy-errors.js";

/** Exit code of `--wait` when the sandbox did not report in time (upstream's, as `timeout(1)`). */
export const WAIT_TIMEOUT_EXIT = 124;

/**
 * How often `--wait` asks GetSandboxPolicyStatus: at once after UpdateConfig answers, then every
 * 50 ms, as bench/README.md recommends from bench/policy-bench.ts (the supervisor is told by push
 * and reports LOADED ~20 ms after the send on host supervisors, ~80 ms on a VM; upstream's 1 s poll
 * would be most of the wait; one poll is ~1 ms of gateway CPU and a wait is 2-5 polls).
 */
const WAIT_POLL_MS = 50;

/** What `--wait` saw. */
export type WaitOutcome =
  | { status: "loaded" | "superseded"; version: number; activeVersion: number }
  | { status: "failed"; version: number; activeVersion: number; error: string }
  | { status: "timeout"; version: number; activeVersion: number };

/** Polls GetSandboxPolicyStatus(version) until LOADED, FAILED or SUPERSEDED, or `timeoutSeconds`. */
export async function waitForPolicyLoad(
  client: OpenShellClient,
  sandbox: string,
  version: number,
  timeoutSeconds: number,
  pollMs = WAIT_POLL_MS,
): Promise<WaitOutcome> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let activeVersion = 0;
  for (;;) {
    const response = await client
      .getSandboxPolicyStatus({ name: sandbox, version })
      .catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox, version });
      });
    activeVersion = response.activeVersion;
    const revision = response.revision;
    switch (revision?.status) {
      case PolicyStatus.LOADED:
        return { status: "loaded", version, activeVersion };
      case PolicyStatus.SUPERSEDED:
        return { status: "superseded", version, activeVersion };
      case PolicyStatus.FAILED:
        return { status: "failed", version, activeVersion, error: revision.loadError };
    }
    const left = deadline - Date.now();
    if (left <= 0) return { status: "timeout", version, activeVersion };
    await sleep(Math.min(pollMs, left));
  }
}

/** Prints what `--wait` saw in upstream's words, plus the next step; returns the exit code. */
export function reportWaitOutcome(output: Output, sandbox: string, outcome: WaitOutcome): number {
  const { version, activeVersion } = outcome;
  switch (outcome.status) {
    case "loaded":
      output.success(`Policy version ${version} loaded (active version: ${activeVersion})`);
      return 0;
    case "superseded":
      output.warn(
        `Policy version ${version} was superseded by a newer version before it loaded (active version: ${activeVersion}); see: openshell policy list ${sandbox}`,
      );
      return 0;
    case "failed":
      // The load error comes from the sandbox's supervisor: hostile text.
      output.error(`Policy version ${version} failed to load: ${terminalSafe(outcome.error)}`);
      output.note(
        activeVersion > 0
          ? `The previous policy (version ${activeVersion}) stays in force. Fix the policy and run 'openshell policy set' again.`
          : "No earlier policy was loaded by the sandbox. Fix the policy and run 'openshell policy set' again.",
      );
      return 1;
    case "timeout":
      output.error(`Timeout waiting for policy version ${version} to load`);
      output.note(
        `The sandbox has not reported it (active version: ${activeVersion}). Is it running? See: openshell sandbox get ${sandbox}, openshell logs ${sandbox}`,
      );
      return WAIT_TIMEOUT_EXIT;
  }
}
