import type { OpenShellClient } from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import { type Sandbox, SandboxPhase } from "@openshell/proto";
import type { Output } from "../ui/output.js";
import { terminalSafe } from "../ui/terminal-safe.js";
import { phaseName, readyDetail } from "./sandbox-view.js";

const DEFAULT_PROVISION_TIMEOUT_S = 300;

export function provisionTimeoutMs(env: NodeJS.ProcessEnv): number {
  const raw = env.OPENSHELL_PROVISION_TIMEOUT;
  if (raw === undefined || raw === "") return DEFAULT_PROVISION_TIMEOUT_S * 1000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new OpenShellError(
      "invalid_argument",
      `OPENSHELL_PROVISION_TIMEOUT='${raw}' is not a number of seconds`,
    );
  return seconds * 1000;
}

/**
 * Follows WatchSandbox (status, platform events, logs) until the sandbox is READY, showing each
 * step; ERROR and the timeout end it with the reason and where to look next.
 */
export async function waitForReady(options: {
  client: OpenShellClient;
  sandbox: Sandbox;
  output: Output;
  timeoutMs: number;
  verbose: boolean;
  /** What the wait is for, in the progress line: "Provisioning" (create) or "Starting" (start). */
  activity?: string;
  /**
   * Platform events stamped before this (ms since the epoch) are history and not shown: `start`
   * passes the moment it began, so the events of an earlier run of the sandbox (a Kubernetes pod's
   * Events outlive the pod) do not read as this start's steps.
   */
  eventsSinceMs?: number;
}): Promise<Sandbox> {
  const { client, output } = options;
  const started = Date.now();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.timeoutMs);
  let current = options.sandbox;
  let lastStep = "";
  const progress = output.progress(`${options.activity ?? "Provisioning"} sandbox '${current.name}'`);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  // Steps quote conditions, platform events and log lines: the sandbox writes some of them.
  const step = (text: string) => {
    lastStep = terminalSafe(text);
    progress.update(`${lastStep} ${output.dim(`(${elapsed()})`)}`);
  };
  try {
    const stream = client.watchSandbox(
      {
        id: current.id,
        followStatus: true,
        followEvents: true,
        followLogs: true,
        logTailLines: 0,
        eventTail: 20,
      },
      { signal: abort.signal },
    );
    for await (const event of stream) {
      const payload = event.payload;
      if (payload.case === "sandbox") {
        current = payload.value;
        if (current.phase === SandboxPhase.READY) {
          progress.done();
          output.success(`Sandbox '${current.name}' is ready ${output.dim(`(${elapsed()})`)}`);
          return current;
        }
        if (current.phase === SandboxPhase.ERROR)
          throw new OpenShellError(
            "failed_precondition",
            `sandbox '${current.name}' failed: ${readyDetail(current) ?? "no reason given"}\nSee: openshell logs ${current.name}`,
          );
        step(`${phaseName(current.phase)}${readyDetail(current) ? `: ${readyDetail(current)}` : ""}`);
      } else if (payload.case === "event") {
        const stamped = Number(payload.value.timestampMs);
        if (options.eventsSinceMs !== undefined && stamped > 0 && stamped < options.eventsSinceMs) continue;
        step(
          `${payload.value.reason}${payload.value.message ? `: ${firstLine(payload.value.message)}` : ""}`,
        );
      } else if (payload.case === "log" && (options.verbose || output.interactive)) {
        step(firstLine(payload.value.message));
      } else if (payload.case === "warning") {
        output.warn(terminalSafe(payload.value.message, { multiline: true }));
      }
    }
    throw new OpenShellError(
      "unavailable",
      `the gateway ended the watch of sandbox '${current.name}' before it was ready; check it with: openshell sandbox get ${current.name}`,
    );
  } catch (error) {
    progress.done();
    if (abort.signal.aborted)
      throw new OpenShellError(
        "deadline_exceeded",
        `sandbox '${current.name}' was not ready after ${Math.round(options.timeoutMs / 1000)} s (phase: ${phaseName(current.phase)}${lastStep ? `, last step: ${lastStep}` : ""}).\nSee: openshell logs ${current.name}   (raise the limit with OPENSHELL_PROVISION_TIMEOUT=<seconds>)`,
      );
    throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

function firstLine(text: string): string {
  const line = text.split("\n")[0] ?? "";
  return line.length > 100 ? `${line.slice(0, 97)}...` : line;
}
