import { Code, ConnectError } from "@connectrpc/connect";
import type { OpenShellClient } from "@openshell/bootstrap";
import type { CliContext } from "../cli-context.js";
import { explainPolicyError } from "./policy-errors.js";
import { shortHash } from "./policy-view.js";
import { reportWaitOutcome, WAIT_TIMEOUT_EXIT, waitForPolicyLoad } from "./policy-wait.js";

/** The latest revision's version before a change (0 when there is none yet); an unknown sandbox is NOT_FOUND (exit 4). */
export async function latestVersion(client: OpenShellClient, sandbox: string): Promise<number> {
  try {
    return (await client.getSandboxPolicyStatus({ name: sandbox })).revision?.version ?? 0;
  } catch (error) {
    if (
      error instanceof ConnectError &&
      error.code === Code.NotFound &&
      error.rawMessage.includes("revision")
    )
      return 0;
    throw explainPolicyError(error, { sandbox });
  }
}

/** Upstream's "submitted" / "unchanged" line, then --wait. Shared with `policy update`. */
export async function submitted(
  ctx: CliContext,
  client: OpenShellClient,
  sandbox: string,
  before: number,
  response: { version: number; policyHash: string },
  options: { wait: boolean; timeout: number },
): Promise<number> {
  const unchanged = response.version <= before;
  const hash = shortHash(response.policyHash);
  const outcome = options.wait
    ? await waitForPolicyLoad(client, sandbox, response.version, options.timeout)
    : undefined;
  if (ctx.json) {
    ctx.output.json({
      sandbox,
      version: response.version,
      policy_hash: response.policyHash,
      unchanged,
      ...(outcome
        ? {
            status: outcome.status,
            active_version: outcome.activeVersion,
            ...(outcome.status === "failed" ? { load_error: outcome.error } : {}),
          }
        : {}),
    });
  } else if (unchanged) ctx.output.success(`Policy unchanged (version ${response.version}, hash: ${hash})`);
  else ctx.output.success(`Policy version ${response.version} submitted (hash: ${hash})`);
  if (!outcome) {
    if (!ctx.json && !unchanged)
      ctx.output.note(`See whether the sandbox loaded it with: openshell policy get ${sandbox}`);
    return 0;
  }
  if (ctx.json) return outcome.status === "failed" ? 1 : outcome.status === "timeout" ? WAIT_TIMEOUT_EXIT : 0;
  return reportWaitOutcome(ctx.output, sandbox, outcome);
}
