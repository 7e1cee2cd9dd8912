import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { type Logger, OpenShellError } from "@openshell/core";
import {
  type ExecSandboxEvent,
  ExecSandboxEventSchema,
  type ExecSandboxRequest,
  SandboxPhase,
} from "@openshell/proto";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { buildExecCommand } from "../sandboxes/shell-command.js";
import { stoppedSandboxError } from "../sandboxes/stopped-sandbox.js";
import { execOverRelay } from "../sessions/relay-ssh-exec.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";

/** Upstream: ExecSandbox waits 15 s for a supervisor session, then 10 s for the relay claim. */
export const EXEC_SESSION_WAIT_MS = 15_000;

export interface ExecServiceDeps {
  records: SandboxRecords;
  sessions: SupervisorSessionRegistry;
  logger: Logger;
}

/** ExecSandbox: runs a command in a READY sandbox over a relay and streams stdout, stderr, exit. */
export async function* execSandbox(
  request: ExecSandboxRequest,
  context: HandlerContext,
  deps: ExecServiceDeps,
): AsyncGenerator<ExecSandboxEvent> {
  if (!request.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
  const command = buildExecCommand({
    command: request.command,
    workdir: request.workdir,
    environment: request.environment,
  });
  const sandbox = await deps.records.get(request.sandboxId);
  if (!sandbox) throw new OpenShellError("not_found", `sandbox ${request.sandboxId} not found`);
  const stopped = stoppedSandboxError(sandbox);
  if (stopped) throw stopped;
  if (sandbox.phase !== SandboxPhase.READY) {
    throw new OpenShellError(
      "failed_precondition",
      "sandbox is not ready; wait for phase READY (openshell sandbox get) and retry",
    );
  }
  let opened: Awaited<ReturnType<SupervisorSessionRegistry["openRelay"]>>;
  try {
    opened = await deps.sessions.openRelay(sandbox.id, EXEC_SESSION_WAIT_MS, context.signal);
  } catch (error) {
    const cause = OpenShellError.from(error);
    if (cause.code === "resource_exhausted") throw cause;
    throw new OpenShellError("unavailable", `supervisor relay failed: ${cause.message}`, { cause });
  }
  const relay = await deps.sessions.awaitClaim(opened);
  deps.logger.debug({ sandbox_id: sandbox.id, channel_id: opened.channelId }, "exec relay ready");
  const output = execOverRelay(relay, {
    command,
    stdin: request.stdin,
    tty: request.tty,
    timeoutMs: request.timeoutSeconds * 1000,
    signal: context.signal,
  });
  try {
    for await (const event of output) {
      if (event.kind === "exit") {
        yield create(ExecSandboxEventSchema, { payload: { case: "exit", value: { exitCode: event.code } } });
      } else {
        yield create(ExecSandboxEventSchema, {
          payload: { case: event.kind, value: { data: event.data } },
        });
      }
    }
  } catch (error) {
    throw new OpenShellError("unavailable", (error as Error).message, { cause: error });
  }
}
