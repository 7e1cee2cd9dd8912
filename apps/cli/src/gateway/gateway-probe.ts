import type { GatewayTarget } from "@openshell/bootstrap";
import { connectGateway } from "@openshell/bootstrap";
import type { CliContext } from "../cli-context.js";
import { explainGatewayError } from "./gateway-errors.js";

export interface GatewayProbe {
  reachable: boolean;
  version?: string;
  sandboxes?: number;
  error?: string;
}

/** Health + sandbox count, never throwing: what `status` shows. */
export async function probeGateway(_ctx: CliContext, target: GatewayTarget): Promise<GatewayProbe> {
  const connection = connectGateway(target);
  try {
    const health = await connection.client.health({}, { timeoutMs: 5_000 });
    const list = await connection.client.listSandboxes({ limit: 10_000 }, { timeoutMs: 5_000 });
    return { reachable: true, version: health.version, sandboxes: list.sandboxes.length };
  } catch (error) {
    const explained = explainGatewayError(error, target);
    return { reachable: false, error: (explained as Error).message };
  } finally {
    connection.close();
  }
}
