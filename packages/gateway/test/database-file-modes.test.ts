import { chmodSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { afterEach, describe, expect, it } from "vitest";

const FILES = ["gateway.db", "gateway.db-wal", "gateway.db-shm"];
const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe("the gateway database is private to the gateway's user", () => {
  const running: RunningGateway[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const gw of running.splice(0)) await gw.stop("SIGKILL");
    for (const dir of dirs.splice(0)) removeStateDir(dir);
  });

  // Under the usual umask 022 SQLite alone would create all three 0644.
  it("a fresh state dir gets the database and its WAL/SHM files 0600", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startGateway({ stateDir });
    running.push(gw);
    // A write, so that the WAL is certainly in use.
    await gw.grpc.createSandbox({ spec: {}, name: "modes" });
    expect(Object.fromEntries(FILES.map((name) => [name, modeOf(join(stateDir, name))]))).toEqual({
      "gateway.db": "600",
      "gateway.db-wal": "600",
      "gateway.db-shm": "600",
    });
  });

  it("an existing database with looser modes is tightened at start, with a log line", async () => {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const first = await startGateway({ stateDir });
    await first.grpc.createSandbox({ spec: {}, name: "kept" });
    await first.stop("SIGKILL"); // leaves the WAL and SHM files behind, as a crash would
    for (const name of FILES) {
      expect(existsSync(join(stateDir, name))).toBe(true);
      chmodSync(join(stateDir, name), 0o644);
    }
    const again = await startGateway({ stateDir });
    running.push(again);
    expect(FILES.map((name) => modeOf(join(stateDir, name)))).toEqual(["600", "600", "600"]);
    const tightened = again
      .output()
      .split("\n")
      .filter((line) => line.includes("restricted it to the gateway's user"))
      .map((line) => (JSON.parse(line) as { file: string; mode: string }).file);
    expect(tightened.sort()).toEqual(FILES.map((name) => join(stateDir, name)).sort());
    expect((await again.grpc.getSandbox({ name: "kept" })).sandbox?.name).toBe("kept");
  });
});
