import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { OpenShellError } from "@openshell/core";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { connectToDriver } from "./driver-client.js";
import { type DriverStopReason, runDriverMain } from "./driver-main.js";
import type { ComputeDriverImpl } from "./serve-driver.js";

const BINARY = "openshell-driver-tiny";

/** A driver flag beyond the common ones: it must reach `--help` and parsing from the table alone. */
const EXTRA_FLAGS = {
  "widget-count": { type: "int", default: 1, min: 0, arg: "N", description: "widgets per sandbox" },
} as const;

const unimplemented = () => {
  throw new OpenShellError("unimplemented", "not in the tiny driver");
};

const tinyImpl: ComputeDriverImpl = {
  getCapabilities: () => ({ driverName: "tiny", driverVersion: "1.2.3" }),
  getSandbox: unimplemented,
  validateSandboxCreate: unimplemented,
  watchSandboxes: unimplemented,
  listSandboxes: unimplemented,
  createSandbox: unimplemented,
  startSandbox: unimplemented,
  stopSandbox: unimplemented,
  deleteSandbox: unimplemented,
};

describe("runDriverMain", () => {
  let dir: string;
  let exit: MockInstance<typeof process.exit>;
  let stdout: MockInstance<typeof process.stdout.write>;
  let stderr: MockInstance<typeof process.stderr.write>;
  let signalListeners: { SIGTERM: NodeJS.SignalsListener[]; SIGINT: NodeJS.SignalsListener[] };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "osdrv-"));
    exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    signalListeners = { SIGTERM: process.listeners("SIGTERM"), SIGINT: process.listeners("SIGINT") };
  });

  afterEach(() => {
    // Leave the worker's signal handling as it was.
    for (const name of ["SIGTERM", "SIGINT"] as const)
      for (const listener of process.listeners(name))
        if (!signalListeners[name].includes(listener)) process.off(name, listener);
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  function spec(shutdown = vi.fn(async (_reason: DriverStopReason) => {})) {
    const create = vi.fn(async () => ({ impl: tinyImpl, shutdown }));
    const parseExtra = vi.fn((values: { "widget-count": number }) => ({ widgets: values["widget-count"] }));
    return {
      create,
      parseExtra,
      shutdown,
      spec: { binary: BINARY, extraFlags: EXTRA_FLAGS, parseExtra, create },
    };
  }

  const written = (spy: MockInstance<typeof process.stdout.write>) =>
    spy.mock.calls.map(([chunk]) => String(chunk)).join("");

  it("--help lists the common flags and the driver's own from one table, and starts nothing", async () => {
    const { create, spec: main } = spec();
    await runDriverMain(main, ["--help"], undefined);
    const help = written(stdout);
    expect(help).toContain(`${BINARY} --bind-socket PATH --state-dir DIR [options]`);
    for (const flag of ["--bind-socket", "--state-dir", "--log-level", "--widget-count"])
      expect(help).toContain(flag);
    expect(help).toContain("widgets per sandbox");
    expect(create).not.toHaveBeenCalled();
    expect(exit).not.toHaveBeenCalled();
  });

  it("serves the driver on its socket with the parsed flags and stops when the parent's pipe ends", async () => {
    const { create, parseExtra, shutdown, spec: main } = spec();
    const socket = join(dir, "driver.sock");
    const parent = new PassThrough();
    await runDriverMain(
      main,
      ["--bind-socket", socket, "--state-dir", dir, "--log-level", "silent", "--widget-count", "3"],
      parent,
    );
    expect(parseExtra).toHaveBeenCalledWith(expect.objectContaining({ "widget-count": 3 }));
    expect(create).toHaveBeenCalledWith(
      { bindSocket: socket, stateDir: dir, logLevel: "silent" },
      { widgets: 3 },
      expect.anything(),
    );
    const connection = connectToDriver(socket);
    try {
      expect((await connection.client.getCapabilities({})).driverName).toBe("tiny");
    } finally {
      connection.close();
    }

    parent.end();
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
    expect(shutdown).toHaveBeenCalledExactlyOnceWith("parent-gone");
    const after = connectToDriver(socket);
    try {
      await expect(after.client.getCapabilities({})).rejects.toThrow();
    } finally {
      after.close();
    }
  });

  it("SIGTERM is a clean stop: the workloads are told it was a signal", async () => {
    const { shutdown, spec: main } = spec();
    await runDriverMain(
      main,
      ["--bind-socket", join(dir, "d.sock"), "--state-dir", dir, "--log-level", "silent"],
      undefined,
    );
    process.emit("SIGTERM", "SIGTERM");
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
    expect(shutdown).toHaveBeenCalledExactlyOnceWith("signal");
  });

  it("exits 2 naming the flag when a required flag is missing or a value is bad", async () => {
    const { create, spec: main } = spec();
    await runDriverMain(main, ["--state-dir", dir], undefined);
    expect(written(stderr)).toBe(`${BINARY}: --bind-socket is required\n`);
    expect(exit).toHaveBeenCalledExactlyOnceWith(2);

    stderr.mockClear();
    exit.mockClear();
    await runDriverMain(
      main,
      ["--bind-socket", join(dir, "d.sock"), "--state-dir", dir, "--widget-count", "many"],
      undefined,
    );
    expect(written(stderr)).toMatch(new RegExp(`^${BINARY}: --widget-count 'many' `));
    expect(exit).toHaveBeenCalledExactlyOnceWith(2);
    expect(create).not.toHaveBeenCalled();
  });
});
