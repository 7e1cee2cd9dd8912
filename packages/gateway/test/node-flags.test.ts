import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { delimiter, dirname } from "node:path";
import {
  GATEWAY_BIN,
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { afterEach, describe, expect, it } from "vitest";

// V8 would size the young generation from the host's memory and keep it: most of the gateway's RSS
// per supervisor session, and slower relays (architecture/relays.md, issue 18).
const YOUNG_GENERATION_FLAG = "--max-semi-space-size=1";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the gateway's Node flags", () => {
  it("are in the bundle's shebang, and the bundle runs as an executable with them", () => {
    expect(readFileSync(GATEWAY_BIN, "utf8").split("\n", 1)[0]).toBe(
      `#!/usr/bin/env -S node ${YOUNG_GENERATION_FLAG}`,
    );
    const path = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`;
    const version = execFileSync(GATEWAY_BIN, ["--version"], { env: { ...process.env, PATH: path } });
    expect(version.toString()).toMatch(/^openshell-gateway \S+\n$/);
  });

  it("are passed when the gateway runs under a Node (the launchers read the shebang)", async () => {
    const stateDir = makeStateDir();
    cleanups.push(() => removeStateDir(stateDir));
    const gw: RunningGateway = await startGateway({ stateDir });
    cleanups.push(() => gw.stop("SIGKILL"));
    const argv = readFileSync(`/proc/${gw.pid}/cmdline`, "utf8").split("\0");
    expect(argv.slice(1, argv.indexOf(GATEWAY_BIN))).toContain(YOUNG_GENERATION_FLAG);
  });
});
