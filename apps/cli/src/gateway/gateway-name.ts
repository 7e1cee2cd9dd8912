import { DEFAULT_GATEWAY_NAME } from "@openshell/bootstrap";
import type { CliContext } from "../cli-context.js";

/** `gateway <verb>` acts on --name, else -g / OPENSHELL_GATEWAY / the active gateway, else 'openshell'. */
export function gatewayNameFor(ctx: CliContext, explicit: string | undefined): string {
  return (
    explicit ??
    ctx.globals.gateway ??
    ctx.env.OPENSHELL_GATEWAY ??
    ctx.registry.active() ??
    DEFAULT_GATEWAY_NAME
  );
}
