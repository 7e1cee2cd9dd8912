import type { Command } from "commander";
import { buildCommander, type ProgramHooks } from "./command-spec/commander-adapter.js";
import { GLOBAL_OPTIONS } from "./command-spec/global-options.js";
import { command, group, type ProgramSpec } from "./command-spec/program-spec.js";
import { completionCommand } from "./commands/completion.js";
import { forwardListCommand } from "./commands/forward/list.js";
import { forwardStopCommand } from "./commands/forward/stop.js";
import { gatewayAddCommand } from "./commands/gateway/add.js";
import { gatewayDestroyCommand } from "./commands/gateway/destroy.js";
import { gatewayInfoCommand } from "./commands/gateway/info.js";
import { gatewayListCommand } from "./commands/gateway/list.js";
import { gatewaySelectCommand } from "./commands/gateway/select.js";
import { gatewayStartCommand } from "./commands/gateway/start.js";
import { gatewayStatusCommand } from "./commands/gateway/status.js";
import { gatewayStopCommand } from "./commands/gateway/stop.js";
import { logsCommand } from "./commands/logs.js";
import { policyDeleteCommand } from "./commands/policy/delete.js";
import { policyGetCommand } from "./commands/policy/get.js";
import { policyListCommand } from "./commands/policy/list.js";
import { policySetCommand } from "./commands/policy/set.js";
import { policyUpdateCommand } from "./commands/policy/update.js";
import { sandboxConnectCommand } from "./commands/sandbox/connect.js";
import { sandboxCreateCommand } from "./commands/sandbox/create.js";
import { sandboxDeleteCommand } from "./commands/sandbox/delete.js";
import { sandboxDownloadCommand } from "./commands/sandbox/download.js";
import { sandboxExecCommand } from "./commands/sandbox/exec.js";
import { sandboxForkCommand } from "./commands/sandbox/fork.js";
import { sandboxForwardCommand } from "./commands/sandbox/forward.js";
import { sandboxGetCommand } from "./commands/sandbox/get.js";
import { sandboxListCommand } from "./commands/sandbox/list.js";
import { sandboxSshConfigCommand } from "./commands/sandbox/ssh-config.js";
import { sandboxStartCommand } from "./commands/sandbox/start.js";
import { sandboxStopCommand } from "./commands/sandbox/stop.js";
import { sandboxUploadCommand } from "./commands/sandbox/upload.js";
import { settingsDeleteCommand } from "./commands/settings/delete.js";
import { settingsGetCommand } from "./commands/settings/get.js";
import { settingsSetCommand } from "./commands/settings/set.js";
import { sshProxyCommand } from "./commands/ssh-proxy.js";
import { statusCommand } from "./commands/status.js";

/**
 * Every command, in help order: its spec (`commands/<noun>/<verb>.ts`, loaded at start) and its
 * handler (`<verb>-handler.ts`, imported only when it runs), so `openshell --version` and `--help`
 * load the specs and commander alone (cold start, bench/cli-bench.ts).
 */
export const PROGRAM: ProgramSpec = {
  name: "openshell",
  description: "Run AI agents and commands in policy-governed sandboxes through one gateway.",
  version: { flags: "-V, --version", description: "print the version" },
  globals: GLOBAL_OPTIONS,
  helpAfter: `
Examples:
  openshell gateway start                      start a local gateway (microVM sandboxes)
  openshell sandbox create -- echo hello       create a sandbox and run a command in it
  openshell sandbox connect                    open a shell in the last-used sandbox
  openshell sandbox list -o json

Exit codes: 0 ok, 1 failure, 2 bad usage, 3 gateway unreachable or not configured, 4 not found,
5 sandbox not ready / timed out, 130 interrupted; exec, connect and create -- CMD return the
remote command's own exit code.`,
  entries: [
    group({ name: "gateway", aliases: ["gw"], description: "start, stop and choose gateways" }, [
      command(gatewayStartCommand, () => import("./commands/gateway/start-handler.js")),
      command(gatewayStopCommand, () => import("./commands/gateway/stop-handler.js")),
      command(gatewayDestroyCommand, () => import("./commands/gateway/destroy-handler.js")),
      command(gatewayStatusCommand, () => import("./commands/gateway/status-handler.js")),
      command(gatewaySelectCommand, () => import("./commands/gateway/select-handler.js")),
      command(gatewayListCommand, () => import("./commands/gateway/list-handler.js")),
      command(gatewayAddCommand, () => import("./commands/gateway/add-handler.js")),
      command(gatewayInfoCommand, () => import("./commands/gateway/info-handler.js")),
    ]),
    command(statusCommand, () => import("./commands/status-handler.js")),
    group({ name: "sandbox", aliases: ["sb"], description: "create, use and delete sandboxes" }, [
      command(sandboxCreateCommand, () => import("./commands/sandbox/create-handler.js")),
      command(sandboxListCommand, () => import("./commands/sandbox/list-handler.js")),
      command(sandboxGetCommand, () => import("./commands/sandbox/get-handler.js")),
      command(sandboxDeleteCommand, () => import("./commands/sandbox/delete-handler.js")),
      command(sandboxStopCommand, () => import("./commands/sandbox/stop-handler.js")),
      command(sandboxStartCommand, () => import("./commands/sandbox/start-handler.js")),
      command(sandboxForkCommand, () => import("./commands/sandbox/fork-handler.js")),
      command(sandboxExecCommand, () => import("./commands/sandbox/exec-handler.js")),
      command(sandboxConnectCommand, () => import("./commands/sandbox/connect-handler.js")),
      command(sandboxSshConfigCommand, () => import("./commands/sandbox/ssh-config-handler.js")),
      command(sandboxUploadCommand, () => import("./commands/sandbox/upload-handler.js")),
      command(sandboxDownloadCommand, () => import("./commands/sandbox/download-handler.js")),
      command(sandboxForwardCommand, () => import("./commands/sandbox/forward-handler.js")),
    ]),
    group({ name: "forward", aliases: ["fwd"], description: "background port forwards" }, [
      command(forwardListCommand, () => import("./commands/forward/list-handler.js")),
      command(forwardStopCommand, () => import("./commands/forward/stop-handler.js")),
    ]),
    group(
      {
        name: "policy",
        aliases: ["pol"],
        description: "versioned sandbox policies, enforced in the sandbox",
      },
      [
        command(policySetCommand, () => import("./commands/policy/set-handler.js")),
        command(policyUpdateCommand, () => import("./commands/policy/update-handler.js")),
        command(policyGetCommand, () => import("./commands/policy/get-handler.js")),
        command(policyListCommand, () => import("./commands/policy/list-handler.js")),
        command(policyDeleteCommand, () => import("./commands/policy/delete-handler.js")),
      ],
    ),
    group({ name: "settings", description: "sandbox and gateway-wide settings (ocsf_json_enabled)" }, [
      command(settingsGetCommand, () => import("./commands/settings/get-handler.js")),
      command(settingsSetCommand, () => import("./commands/settings/set-handler.js")),
      command(settingsDeleteCommand, () => import("./commands/settings/delete-handler.js")),
    ]),
    command(logsCommand, () => import("./commands/logs-handler.js")),
    command(sshProxyCommand, () => import("./commands/ssh-proxy-handler.js")),
    command(completionCommand, () => import("./commands/completion-handler.js")),
  ],
};

/** The commander tree of PROGRAM (main.ts parses with it; tests walk it). */
export function buildProgram(version: string, hooks: ProgramHooks): Command {
  return buildCommander(PROGRAM, version, hooks);
}
