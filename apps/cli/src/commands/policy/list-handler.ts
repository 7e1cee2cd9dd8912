import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { explainPolicyError } from "../../policy/policy-errors.js";
import { policyStatusName, revisionJson, shortHash, timeText } from "../../policy/policy-view.js";
import { getSandbox } from "../../sandbox/sandbox-lookup.js";
import type { policyListCommand } from "./list.js";

/** `policy list [NAME] [--limit 20] [--global]`: the revision history, newest first. */
export async function run(input: CommandInput<typeof policyListCommand>): Promise<number> {
  const { options } = input;
  const ctx = CliContext.of(input);
  const target = ctx.target();
  const global = options.global;
  const name = global ? "" : ctx.sandboxName(input.args.name, target);
  if (!global) ctx.rememberSandbox(target, name);
  const { revisions, activeVersion } = await ctx.withGateway(async (client) => {
    const active = global ? 0 : (await getSandbox(client, name)).currentPolicyVersion;
    const response = await client
      .listSandboxPolicies({ name, limit: options.limit, global })
      .catch((error: unknown) => {
        throw explainPolicyError(error, { sandbox: name, global });
      });
    return { revisions: response.revisions, activeVersion: active };
  }, target);
  if (ctx.json) {
    ctx.output.json(revisions.map((revision) => revisionJson(revision)));
    return 0;
  }
  if (revisions.length === 0) {
    ctx.output.note(
      global
        ? "No global policy has been set."
        : `Sandbox '${name}' has no policy versions yet; set one with: openshell policy set ${name} --policy FILE`,
    );
    return 0;
  }
  // Load errors are the supervisor's text; the table prints every cell terminal-safe.
  ctx.output.table(
    ["VERSION", "HASH", "STATUS", "CREATED", "LOADED", "ERROR"],
    revisions.map((revision) => [
      `${revision.version}${!global && revision.version === activeVersion ? " *" : ""}`,
      shortHash(revision.policyHash),
      policyStatusName(revision.status),
      timeText(revision.createdAtMs),
      timeText(revision.loadedAtMs),
      revision.loadError.length > 60 ? `${revision.loadError.slice(0, 59)}…` : revision.loadError,
    ]),
  );
  if (!global && activeVersion > 0)
    ctx.output.note(`* active version (loaded by the sandbox): ${activeVersion}`);
  return 0;
}
