import { policyToYaml } from "@openshell/policy";
import { PolicyStatus } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { policyStatusName, revisionJson, timeText } from "../../policy/policy-view.js";
import { terminalSafe } from "../../ui/terminal-safe.js";
import type { policyGetCommand } from "./get.js";

/** `policy get [NAME] [--rev N] [--full] [--global]`: one revision's summary, and its YAML with --full. */
export async function run(input: CommandInput<typeof policyGetCommand>): Promise<number> {
  const { options } = input;
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const global = options.global;
  const name = global ? "" : ctx.sandboxName(input.args.name, target);
  if (!global) ctx.rememberSandbox(target, name);
  const version = options.rev ?? 0;
  const { response, globalVersion } = await ctx.withGateway(async (client) => {
    const response = await client
      .getSandboxPolicyStatus({ name, version, global })
      .catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox: name, version, global });
      });
    // A global policy in force overrides the sandbox's own: say so next to it.
    const globalStatus = global
      ? undefined
      : await client.getSandboxPolicyStatus({ global: true }).catch(() => undefined);
    const globalRevision = globalStatus?.revision;
    const globalVersion = globalRevision?.status === PolicyStatus.LOADED ? globalRevision.version : 0;
    return { response, globalVersion };
  }, target);
  const revision = response.revision;
  if (!revision) throw new Error("the gateway answered no policy revision");
  if (ctx.json) {
    ctx.output.json({
      ...(global ? { scope: "global" } : { sandbox: name }),
      ...revisionJson(revision, {
        withPolicy: options.full,
        ...(global ? {} : { activeVersion: response.activeVersion }),
      }),
    });
    return 0;
  }
  const rows: [string, string][] = [
    [global ? "Scope" : "Sandbox", global ? "global" : name],
    ["Version", String(revision.version)],
    ["Hash", revision.policyHash],
    ["Status", policyStatusName(revision.status)],
  ];
  if (!global)
    rows.push(["Active version", response.activeVersion ? String(response.activeVersion) : "none"]);
  rows.push(["Created", timeText(revision.createdAtMs)], ["Loaded", timeText(revision.loadedAtMs)]);
  // A load error is the supervisor's text: hostile.
  if (revision.loadError) rows.push(["Error", revision.loadError]);
  for (const [key, value] of rows) ctx.output.print(`${`${key}:`.padEnd(16)} ${terminalSafe(value)}`);
  if (globalVersion > 0)
    ctx.output.note(
      `A global policy (version ${globalVersion}) overrides this sandbox's policy; see: openshell policy get --global`,
    );
  if (options.full && revision.policy) {
    ctx.output.print("---");
    // The policy may have been synced from the sandbox (its own discovered policy): terminal-safe.
    ctx.output.print(terminalSafe(policyToYaml(revision.policy).trimEnd(), { multiline: true }));
  }
  return 0;
}
