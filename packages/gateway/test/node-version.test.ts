import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { GATEWAY_BIN, makeStateDir, removeStateDir } from "@openshell/testing/gateway-harness";
import { describe, expect, it } from "vitest";

/** Debian 12's own Node (20): what a user's PATH may hold instead of the project's Node 24. */
const SYSTEM_NODE = "/usr/bin/node";

function majorOf(node: string): number | undefined {
  if (!existsSync(node)) return undefined;
  const answer = spawnSync(node, ["--version"], { encoding: "utf8" });
  return answer.status === 0 ? Number(/^v(\d+)/.exec(answer.stdout)?.[1]) : undefined;
}

const oldMajor = majorOf(SYSTEM_NODE);

describe.skipIf(oldMajor === undefined || oldMajor >= 24)("the gateway on a Node older than 24", () => {
  it("refuses to start with what to do, instead of crashing in its SQLite addon", () => {
    const stateDir = makeStateDir();
    try {
      const run = spawnSync(
        SYSTEM_NODE,
        [
          GATEWAY_BIN,
          "--db-url",
          `sqlite:${stateDir}/gateway.db`,
          "--port",
          "18080",
          "--disable-tls",
          "--drivers",
          "test",
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
      expect(run.signal).toBeNull();
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(
          `^openshell-gateway: needs Node\\.js 24 or newer, this is v${oldMajor}\\.\\d+\\.\\d+ \\(${SYSTEM_NODE}\\)\\. Run it with Node 24`,
        ),
      );
    } finally {
      removeStateDir(stateDir);
    }
  });
});
