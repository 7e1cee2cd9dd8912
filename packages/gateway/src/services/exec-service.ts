import type { Duplex } from "node:stream";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type Logger, OpenShellError } from "@openshell/core";
import {
  type ExecSandboxEvent,
  ExecSandboxEventSchema,
  type ExecSandboxRequest,
  type OpenShell,
  SandboxPhase,
} from "@openshell/proto";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { buildExecCommand } from "../sandboxes/shell-command.js";
import { stoppedSandboxError } from "../sandboxes/stopped-sandbox.js";
import { SandboxExecConnections } from "../sessions/sandbox-exec-connections.js";
import type { SupervisorSessionRegistry } from "../sessions/supervisor-session-registry.js";

/** Upstream: ExecSandbox waits 15 s for a supervisor session, then 10 s for the relay claim. */
const EXEC_SESSION_WAIT_MS = 15_000;

export interface ExecServiceDeps {
  records: SandboxRecords;
  sessions: SupervisorSessionRegistry;
  logger: Logger;
}

/** ExecSandbox, with one pool of SSH connections per gateway shared by all its calls. */
export function createExecRpcs(deps: ExecServiceDeps): Pick<ServiceImpl<typeof OpenShell>, "execSandbox"> {
  const connections = new SandboxExecConnections({
    openTransport: (sandboxId, signal) => openExecRelay(deps.sessions, sandboxId, signal),
    onSessionChange: (listener) => deps.sessions.onSessionChange(listener),
    logger: deps.logger,
  });
  return { execSandbox: (request, context) => execSandbox(request, context, deps, connections) };
}

/** A relay to the sandbox's SSH server; UNAVAILABLE when the sandbox cannot be reached. */
async function openExecRelay(
  sessions: SupervisorSessionRegistry,
  sandboxId: string,
  signal: AbortSignal,
): Promise<Duplex> {
  let opened: Awaited<ReturnType<SupervisorSessionRegistry["openRelay"]>>;
  try {
    opened = await sessions.openRelay(sandboxId, EXEC_SESSION_WAIT_MS, signal);
  } catch (error) {
    const cause = OpenShellError.from(error);
    if (cause.code === "resource_exhausted") throw cause;
    throw new OpenShellError(
      "unavailable",
      `sandbox ${sandboxId} is not reachable: ${cause.message} (its supervisor may be restarting; retry shortly)`,
      { cause },
    );
  }
  try {
    return await sessions.awaitClaim(opened);
  } catch (error) {
    const cause = OpenShellError.from(error);
    throw new OpenShellError(
      cause.code === "deadline_exceeded" ? "deadline_exceeded" : "unavailable",
      `the supervisor of sandbox ${sandboxId} did not open a relay: ${cause.message}`,
      { cause },
    );
  }
}

/** ExecSandbox: runs a command in a READY sandbox and streams stdout, stderr, exit. */
async function* execSandbox(
  request: ExecSandboxRequest,
  context: HandlerContext,
  deps: ExecServiceDeps,
  connections: SandboxExecConnections,
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
  const output = connections.exec(sandbox.id, {
    command,
    stdin: request.stdin,
    tty: request.tty,
    timeoutMs: request.timeoutSeconds * 1000,
    signal: context.signal,
  });
  for await (const event of output) {
    if (event.kind === "exit") {
      yield create(ExecSandboxEventSchema, { payload: { case: "exit", value: { exitCode: event.code } } });
    } else {
      yield create(ExecSandboxEventSchema, { payload: { case: event.kind, value: { data: event.data } } });
    }
  }
}
