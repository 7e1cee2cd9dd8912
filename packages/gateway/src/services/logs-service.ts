import type { ServiceImpl } from "@connectrpc/connect";
import { OpenShellError } from "@openshell/core";
import type { OpenShell } from "@openshell/proto";
import type { SupervisorCredentials } from "../auth/supervisor-credentials.js";
import type { SandboxEventHub } from "../events/sandbox-event-hub.js";
import type { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { bearerToken } from "./bearer-token.js";

const DEFAULT_LOG_LINES = 2000;
const MAX_LINES_PER_PUSH = 100;

type LogRpcs = Pick<ServiceImpl<typeof OpenShell>, "getSandboxLogs" | "pushSandboxLogs">;

export function createLogRpcs(deps: {
  records: SandboxRecords;
  hub: SandboxEventHub;
  credentials: SupervisorCredentials;
}): LogRpcs {
  return {
    async getSandboxLogs(request) {
      if (!request.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
      if (!(await deps.records.get(request.sandboxId))) {
        throw new OpenShellError("not_found", `sandbox ${request.sandboxId} not found`);
      }
      const { lines, bufferTotal } = deps.hub.logTail(request.sandboxId, {
        lines: request.lines || DEFAULT_LOG_LINES,
        sinceMs: request.sinceMs,
        sources: request.sources,
        minLevel: request.minLevel,
      });
      return { logs: lines, bufferTotal };
    },

    /** Supervisor log shipping: at most 100 lines per batch, tagged source "sandbox". */
    async pushSandboxLogs(requests, context) {
      const token = bearerToken(context.requestHeader.get("authorization"));
      deps.credentials.verify(token);
      for await (const batch of requests) {
        if (!batch.sandboxId) throw new OpenShellError("invalid_argument", "sandbox_id is required");
        deps.credentials.authorize(token, batch.sandboxId);
        for (const line of batch.logs.slice(0, MAX_LINES_PER_PUSH)) {
          line.sandboxId = batch.sandboxId;
          line.source = "sandbox";
          deps.hub.publishLog(line);
        }
      }
      return {};
    },
  };
}
