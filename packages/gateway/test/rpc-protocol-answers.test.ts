import http2 from "node:http2";
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, file_google_protobuf_empty } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ServiceStatus } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  rpcFailure,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  /** The HEADERS frame ended the stream (gRPC trailers-only). */
  headersEndedStream: boolean;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** Milliseconds from the first byte sent until the stream closed. */
  closedAfterMs: number;
  bytesWritten: number;
}

/**
 * One HTTP/2 request written by hand: no content-length, `body` streamed in 64 KiB chunks as flow
 * control allows. Resolves when the stream closes, rejects after `timeoutMs`.
 */
function rawH2(
  port: number,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  timeoutMs = 5_000,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => undefined);
    const started = Date.now();
    const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const answer: RawAnswer = {
      status: 0,
      headers: {},
      headersEndedStream: false,
      trailers: {},
      body: Buffer.alloc(0),
      closedAfterMs: 0,
      bytesWritten: 0,
    };
    const timer = setTimeout(() => {
      session.destroy();
      reject(
        new Error(
          `stream not closed after ${timeoutMs} ms (answer so far: ${answer.status} ${answer.body.toString().slice(0, 200)})`,
        ),
      );
    }, timeoutMs);
    req.on("response", (responseHeaders, flags) => {
      answer.status = Number(responseHeaders[":status"]);
      answer.headers = responseHeaders;
      answer.headersEndedStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on("trailers", (trailers) => {
      answer.trailers = trailers;
    });
    req.on("data", (chunk: Buffer) => {
      answer.body = Buffer.concat([answer.body, chunk]);
    });
    req.on("error", () => undefined);
    req.on("close", () => {
      clearTimeout(timer);
      answer.closedAfterMs = Date.now() - started;
      session.close();
      resolve(answer);
    });
    const chunkBytes = 64 * 1024;
    const write = (): void => {
      while (answer.bytesWritten < body.length) {
        const chunk = body.subarray(answer.bytesWritten, answer.bytesWritten + chunkBytes);
        answer.bytesWritten += chunk.length;
        if (!req.write(chunk)) {
          req.once("drain", write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

/** A gRPC (or Connect streaming) length-prefixed message, uncompressed. */
function envelope(payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

const status = (answer: RawAnswer) =>
  Number(answer.trailers["grpc-status"] ?? answer.headers["grpc-status"] ?? Number.NaN);

/**
 * Services and methods as upstream OpenShell declares them but our protos do not: what an upstream
 * client (the Python SDK, the Rust CLI) sends.
 */
function upstreamOnlyServices(): { openShell: DescService; inference: DescService } {
  const registry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "upstream_only.proto",
      syntax: "proto3",
      dependency: ["google/protobuf/empty.proto"],
      package: "openshell.v1",
      service: [
        {
          name: "OpenShell",
          method: [
            {
              name: "GetDraftPolicy",
              inputType: ".google.protobuf.Empty",
              outputType: ".google.protobuf.Empty",
            },
          ],
        },
      ],
    }),
    () => file_google_protobuf_empty,
  );
  const inferenceRegistry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "upstream_inference.proto",
      syntax: "proto3",
      dependency: ["google/protobuf/empty.proto"],
      package: "openshell.inference.v1",
      service: [
        {
          name: "Inference",
          method: [
            {
              name: "GetInferenceBundle",
              inputType: ".google.protobuf.Empty",
              outputType: ".google.protobuf.Empty",
            },
          ],
        },
      ],
    }),
    () => file_google_protobuf_empty,
  );
  return {
    openShell: registry.getService("openshell.v1.OpenShell") as DescService,
    inference: inferenceRegistry.getService("openshell.inference.v1.Inference") as DescService,
  };
}

describe("RPC answers at the protocol's edges", () => {
  let gw: RunningGateway;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = makeStateDir();
    gw = await startGateway({ stateDir });
  });

  afterAll(async () => {
    await gw?.stop("SIGKILL");
    removeStateDir(stateDir);
  });

  describe("a request body over the 1 MiB limit", () => {
    const fiveMiB = Buffer.alloc(5 * 1024 * 1024, 0x01);

    it.each(["Health", "CreateSandbox"])(
      "Connect unary %s over HTTP/2 without content-length: RESOURCE_EXHAUSTED at once, stream closed",
      async (method) => {
        const answer = await rawH2(
          gw.port,
          `/openshell.v1.OpenShell/${method}`,
          { "content-type": "application/proto" },
          fiveMiB,
        );
        expect(answer.status).toBe(429);
        expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "resource_exhausted" });
        // Closed by the gateway, not by the client running out of body to send.
        expect(answer.bytesWritten).toBeLessThan(fiveMiB.length);
      },
    );

    it("gRPC: RESOURCE_EXHAUSTED at once, stream closed", async () => {
      const answer = await rawH2(
        gw.port,
        "/openshell.v1.OpenShell/CreateSandbox",
        { "content-type": "application/grpc" },
        envelope(fiveMiB),
      );
      expect(status(answer)).toBe(Code.ResourceExhausted);
      expect(answer.bytesWritten).toBeLessThan(fiveMiB.length);
    });

    it("leaves the gateway serving", async () => {
      expect((await gw.grpc.health({})).status).toBe(ServiceStatus.HEALTHY);
    });
  });

  describe("an undecodable protobuf request is INVALID_ARGUMENT", () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff]);

    it("Connect unary", async () => {
      const answer = await rawH2(
        gw.port,
        "/openshell.v1.OpenShell/CreateSandbox",
        { "content-type": "application/proto" },
        garbage,
      );
      expect(answer.status).toBe(400);
      const error = JSON.parse(answer.body.toString()) as { code: string; message: string };
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(
        /^the request could not be decoded as openshell\.v1\.CreateSandboxRequest/,
      );
    });

    it("Connect unary over HTTP/1.1", async () => {
      const response = await fetch(`${gw.url}/openshell.v1.OpenShell/ListSandboxes`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: garbage,
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: "invalid_argument" });
    });

    it.each([
      ["unary", "CreateSandbox"],
      ["server-streaming", "ExecSandbox"],
      ["server-streaming", "WatchSandbox"],
    ])("gRPC %s %s", async (_kind, method) => {
      const answer = await rawH2(
        gw.port,
        `/openshell.v1.OpenShell/${method}`,
        { "content-type": "application/grpc" },
        envelope(garbage),
      );
      expect(status(answer)).toBe(Code.InvalidArgument);
      expect(
        decodeURIComponent(String(answer.trailers["grpc-message"] ?? answer.headers["grpc-message"])),
      ).toMatch(/^the request could not be decoded as openshell\.v1\./);
    });

    it("an error the implementation raises keeps its code", async () => {
      expect((await rpcFailure(gw.grpc.getSandbox({ name: "ghost" }))).code).toBe(Code.NotFound);
      expect((await rpcFailure(gw.connect.getSandbox({ name: "ghost" }))).code).toBe(Code.NotFound);
    });
  });

  describe("RPCs the gateway does not serve are UNIMPLEMENTED, naming the method", () => {
    /** Clients for the upstream-only services (built at runtime, so their methods are untyped). */
    type UnaryCall = (request: object) => Promise<unknown>;
    const clients = () => {
      const { openShell, inference } = upstreamOnlyServices();
      const transports: Array<[string, Transport]> = [
        ["gRPC", createGrpcTransport({ baseUrl: gw.url })],
        ["Connect HTTP/1.1", createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1" })],
        ["Connect HTTP/2", createConnectTransport({ baseUrl: gw.url, httpVersion: "2" })],
      ];
      return transports.map(([name, transport]) => ({
        name,
        openShell: createClient(openShell, transport) as unknown as { getDraftPolicy: UnaryCall },
        inference: createClient(inference, transport) as unknown as { getInferenceBundle: UnaryCall },
      }));
    };

    it("upstream's GetDraftPolicy and the Inference service, over gRPC and Connect", async () => {
      for (const client of clients()) {
        expect(await rpcFailure(client.openShell.getDraftPolicy({})), client.name).toEqual({
          code: Code.Unimplemented,
          message: "openshell.v1.OpenShell/GetDraftPolicy is not implemented yet",
        });
        expect(await rpcFailure(client.inference.getInferenceBundle({})), client.name).toEqual({
          code: Code.Unimplemented,
          message: "openshell.inference.v1.Inference/GetInferenceBundle is not implemented yet",
        });
      }
    });

    it("an unknown path under gRPC gets a trailers-only UNIMPLEMENTED, not HTTP 404", async () => {
      const answer = await rawH2(
        gw.port,
        "/no.such.v9.Service/DoThing",
        { "content-type": "application/grpc+proto" },
        envelope(Buffer.alloc(0)),
      );
      expect(answer.status).toBe(200);
      expect(answer.headersEndedStream).toBe(true);
      expect(answer.headers["grpc-status"]).toBe(String(Code.Unimplemented));
      expect(decodeURIComponent(String(answer.headers["grpc-message"]))).toBe(
        "no.such.v9.Service/DoThing is not implemented yet",
      );
    });

    it("an unknown path under Connect streaming gets an end-of-stream UNIMPLEMENTED", async () => {
      const answer = await rawH2(
        gw.port,
        "/openshell.inference.v1.Inference/WatchRoutes",
        { "content-type": "application/connect+proto" },
        envelope(Buffer.alloc(0)),
      );
      expect(answer.status).toBe(200);
      expect(answer.body[0]).toBe(0b10);
      expect(JSON.parse(answer.body.subarray(5).toString())).toEqual({
        error: {
          code: "unimplemented",
          message: "openshell.inference.v1.Inference/WatchRoutes is not implemented yet",
        },
      });
    });

    it("what is not an RPC still gets 404", async () => {
      expect((await fetch(`${gw.url}/nothing-here`)).status).toBe(404);
      expect(
        (await fetch(`${gw.url}/openshell.v1.OpenShell/GetDraftPolicy`, { method: "POST", body: "x" }))
          .status,
      ).toBe(404);
    });
  });
});
