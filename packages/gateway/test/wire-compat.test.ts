import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, "..", "..", "..");
const BUF = resolve(REPO, "node_modules", ".bin", "buf");

/** An independent client (buf curl, Go) reading only the .proto files talks to the gateway. */
describe("wire compatibility with an independent gRPC client (buf curl)", () => {
  let gw: RunningGateway;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = makeStateDir();
    gw = await startGateway({ stateDir });
    await gw.grpc.createSandbox({ spec: {}, name: "wire-one" });
  });

  afterAll(async () => {
    await gw?.stop("SIGKILL");
    removeStateDir(stateDir);
  });

  const bufCurl = async (protocol: "grpc" | "connect", method: string) => {
    const args = ["curl", "--schema", resolve(REPO, "proto"), "--protocol", protocol, "-d", "{}"];
    if (protocol === "grpc") args.push("--http2-prior-knowledge");
    args.push(`${gw.url}/openshell.v1.OpenShell/${method}`);
    const { stdout } = await run(BUF, args, { cwd: REPO });
    return JSON.parse(stdout);
  };

  for (const protocol of ["grpc", "connect"] as const) {
    it(`Health over ${protocol}`, async () => {
      expect(await bufCurl(protocol, "Health")).toMatchObject({ status: "SERVICE_STATUS_HEALTHY" });
    });
    it(`ListSandboxes over ${protocol}`, async () => {
      const listed = await bufCurl(protocol, "ListSandboxes");
      expect(listed.sandboxes.map((s: { name: string }) => s.name)).toEqual(["wire-one"]);
    });
  }
});
