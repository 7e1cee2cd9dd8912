import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLogger, OpenShellError } from "@openshell/core";
import { compute } from "@openshell/proto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectToDriver, type DriverConnection } from "./driver-client.js";
import { DriverWatchHub } from "./driver-watch-hub.js";
import {
  type ComputeDriverImpl,
  MAX_UNIX_SOCKET_PATH,
  type ServedDriver,
  serveComputeDriver,
} from "./serve-driver.js";

const logger = createLogger({ name: "serve-driver-test", level: "silent" });

/** A tiny driver with one sandbox: enough to see requests, errors and a watch cross the socket. */
function tinyDriver(hub: DriverWatchHub): ComputeDriverImpl {
  const known = create(compute.DriverSandboxSchema, { id: "sb-1", name: "brave-otter" });
  const unimplemented = () => {
    throw new OpenShellError("unimplemented", "not in the tiny driver");
  };
  return {
    getCapabilities: () => ({ driverName: "tiny", driverVersion: "1.2.3" }),
    getSandbox: (request) => {
      if (request.sandboxId !== known.id) {
        throw new OpenShellError("not_found", `sandbox '${request.sandboxId}' not found`);
      }
      return { sandbox: known };
    },
    validateSandboxCreate: () => {
      throw new TypeError("cannot read properties of undefined");
    },
    watchSandboxes: (_request, context) => hub.watch(context.signal, () => [known]),
    listSandboxes: unimplemented,
    createSandbox: unimplemented,
    startSandbox: unimplemented,
    stopSandbox: unimplemented,
    deleteSandbox: unimplemented,
  };
}

async function connectError(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

async function openShellError(promise: Promise<unknown>): Promise<OpenShellError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OpenShellError);
  return error as OpenShellError;
}

describe("serveComputeDriver", () => {
  let dir: string;
  let served: ServedDriver | undefined;
  let connection: DriverConnection | undefined;
  const hub = new DriverWatchHub("tiny");

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "driver-sdk-"));
  });

  afterEach(async () => {
    connection?.close();
    connection = undefined;
    await served?.close();
    served = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("serves unary calls to a client dialling the socket", async () => {
    const socket = join(dir, "nested", "driver.sock");
    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    connection = connectToDriver(socket);
    const capabilities = await connection.client.getCapabilities({});
    expect(capabilities).toMatchObject({ driverName: "tiny", driverVersion: "1.2.3" });
    const { sandbox } = await connection.client.getSandbox({ sandboxId: "sb-1" });
    expect(sandbox?.name).toBe("brave-otter");
  });

  it("creates the socket so only its owner can open it", async () => {
    const socket = join(dir, "driver.sock");
    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    const info = await stat(socket);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o600);
  });

  it("sends OpenShellErrors with their status and other errors as INTERNAL", async () => {
    const socket = join(dir, "driver.sock");
    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    connection = connectToDriver(socket);
    const missing = await connectError(connection.client.getSandbox({ sandboxId: "nope" }));
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.rawMessage).toBe("sandbox 'nope' not found");
    const unimplemented = await connectError(connection.client.createSandbox({}));
    expect(unimplemented.code).toBe(Code.Unimplemented);
    const crashed = await connectError(connection.client.validateSandboxCreate({}));
    expect(crashed.code).toBe(Code.Internal);
    expect(crashed.rawMessage).not.toContain("serve-driver.test.ts");
  });

  it("streams a watch: the snapshot, then published changes", async () => {
    const socket = join(dir, "driver.sock");
    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    connection = connectToDriver(socket);
    const controller = new AbortController();
    const events = connection.client
      .watchSandboxes({}, { signal: controller.signal })
      [Symbol.asyncIterator]();
    const first = (await events.next()).value as compute.WatchSandboxesEvent;
    expect(first.payload.case === "sandbox" && first.payload.value.sandbox?.id).toBe("sb-1");
    hub.deleted("sb-1");
    const second = (await events.next()).value as compute.WatchSandboxesEvent;
    expect(second.payload.case === "deleted" && second.payload.value.sandboxId).toBe("sb-1");
    controller.abort();
    await expect(events.next()).rejects.toThrow();
  });

  it("closes with a watch still open and removes its socket", async () => {
    const socket = join(dir, "driver.sock");
    const driver = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    connection = connectToDriver(socket);
    const events = connection.client.watchSandboxes({})[Symbol.asyncIterator]();
    await events.next();
    await driver.close();
    await expect(stat(socket)).rejects.toMatchObject({ code: "ENOENT" });
    const ended = await events.next().then(
      (result) => result.done,
      () => true,
    );
    expect(ended).toBe(true);
  });

  it("replaces a socket left behind by a driver that was killed", async () => {
    const socket = join(dir, "driver.sock");
    const killed = spawn(
      process.execPath,
      [
        "-e",
        `require("node:net").createServer().listen(${JSON.stringify(socket)}, () => console.log("ready"))`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await once(killed.stdout, "data");
    killed.kill("SIGKILL");
    await once(killed, "exit");
    expect((await stat(socket)).isSocket()).toBe(true);

    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    connection = connectToDriver(socket);
    expect((await connection.client.getCapabilities({})).driverName).toBe("tiny");
  });

  it("replaces a stale non-socket file at the path", async () => {
    const socket = join(dir, "driver.sock");
    await writeFile(socket, "left over");
    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    expect((await stat(socket)).isSocket()).toBe(true);
  });

  it("refuses a socket another driver is serving on, and leaves that one running", async () => {
    const socket = join(dir, "driver.sock");
    served = await serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger });
    const error = await openShellError(
      serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger }),
    );
    expect(error.code).toBe("already_exists");
    connection = connectToDriver(socket);
    expect((await connection.client.getCapabilities({})).driverName).toBe("tiny");
  });

  it("refuses a socket path over the Unix limit with config_invalid, creating nothing", async () => {
    const longDir = join(dir, "d".repeat(MAX_UNIX_SOCKET_PATH));
    const socket = join(longDir, "driver.sock");
    const error = await openShellError(
      serveComputeDriver({ impl: tinyDriver(hub), socketPath: socket, logger }),
    );
    expect(error.code).toBe("config_invalid");
    await expect(stat(longDir)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
