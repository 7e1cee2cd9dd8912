import type { GatewayTarget } from "@openshell/bootstrap";
import type { CliContext } from "../cli-context.js";
import { ExitCode } from "../ui/cli-error.js";
import { probeGateway } from "./gateway-probe.js";

/** `status` / `gateway status`: upstream's "Server Status" block, or JSON. Exit 3 when unreachable. */
export async function printStatus(
  ctx: CliContext,
  target: GatewayTarget,
  details: { pid?: number | undefined; container?: string | undefined } = {},
): Promise<number> {
  const { pid, container } = details;
  const probe = await probeGateway(ctx, target);
  const report = {
    gateway: target.name ?? null,
    endpoint: target.endpoint.origin,
    status: probe.reachable
      ? target.endpoint.protocol === "http:"
        ? "Connected (HTTP)"
        : "Connected"
      : "Disconnected",
    version: probe.version ?? null,
    driver: target.metadata?.driver ?? null,
    deployment: target.metadata?.deployment ?? null,
    pid: pid ?? null,
    container: container ?? null,
    sandboxes: probe.sandboxes ?? null,
    error: probe.error ?? null,
  };
  if (ctx.json) ctx.output.json(report);
  else {
    const { output } = ctx;
    output.print(output.bold("Server Status"));
    output.print(`  Gateway:   ${report.gateway ?? "(by URL)"}`);
    output.print(`  Server:    ${report.endpoint}`);
    output.print(
      `  Status:    ${probe.reachable ? output.paint("32", report.status) : output.paint("31", report.status)}`,
    );
    if (report.version) output.print(`  Version:   ${report.version}`);
    if (report.driver) output.print(`  Driver:    ${report.driver}`);
    if (report.pid) output.print(`  Process:   pid ${report.pid}`);
    if (report.container) output.print(`  Container: ${report.container}`);
    if (report.sandboxes !== null) output.print(`  Sandboxes: ${report.sandboxes}`);
    if (probe.error) output.note(`\n${probe.error}`);
  }
  return probe.reachable ? 0 : ExitCode.gatewayUnavailable;
}
