import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { encodeDataFrame, encodeInitFrame, RelayFrameDecoder } from "@openshell/core";
import { RelayFrameSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";

const unwrap = (wire: Buffer) => fromBinary(RelayFrameSchema, wire.subarray(5));

describe("relay frame codec", () => {
  it("encodes exactly what protobuf-es encodes", () => {
    const data = Buffer.alloc(300, 7);
    const viaLibrary = toBinary(
      RelayFrameSchema,
      create(RelayFrameSchema, { payload: { case: "data", value: data } }),
    );
    expect(encodeDataFrame(data).subarray(5)).toEqual(Buffer.from(viaLibrary));
    const init = unwrap(encodeInitFrame("chan-1"));
    expect(init.payload).toEqual({ case: "init", value: expect.objectContaining({ channelId: "chan-1" }) });
  });

  it("decodes frames split at every byte boundary and joined together", () => {
    const wire = Buffer.concat([
      encodeInitFrame("abc"),
      encodeDataFrame(Buffer.from("hello")),
      encodeDataFrame(Buffer.alloc(70_000, 1)),
      Buffer.from([0, 0, 0, 0, 0]), // a RelayFrame with no payload
    ]);
    for (const step of [1, 3, 4096, wire.length]) {
      const decoder = new RelayFrameDecoder();
      const frames = [];
      for (let i = 0; i < wire.length; i += step) frames.push(...decoder.push(wire.subarray(i, i + step)));
      expect(frames.map((f) => f.kind)).toEqual(["init", "data", "data", "empty"]);
      expect(frames[0]).toEqual({ kind: "init", channelId: "abc" });
      expect(frames[1]?.kind === "data" && frames[1].data.toString()).toBe("hello");
      expect(frames[2]?.kind === "data" && frames[2].data.length).toBe(70_000);
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it("rejects compressed and oversized frames", () => {
    expect(() => new RelayFrameDecoder().push(Buffer.from([1, 0, 0, 0, 0]))).toThrow("compressed");
    expect(() => new RelayFrameDecoder(10).push(Buffer.from([0, 0, 0, 1, 0]))).toThrow("exceeds");
  });
});

describe("encodeDataFrames", () => {
  it("splits a chunk into frames of at most RELAY_FRAME_BYTES that decode back to it", async () => {
    const { encodeDataFrames, RELAY_FRAME_BYTES } = await import("@openshell/core");
    const chunk = Buffer.from(Array.from({ length: 2 * RELAY_FRAME_BYTES + 5 }, (_, i) => i % 251));
    const frames = encodeDataFrames(chunk);
    expect(frames).toHaveLength(3);
    const decoded = new RelayFrameDecoder().push(Buffer.concat(frames));
    expect(decoded.map((f) => (f.kind === "data" ? f.data.length : -1))).toEqual([
      RELAY_FRAME_BYTES,
      RELAY_FRAME_BYTES,
      5,
    ]);
    expect(Buffer.concat(decoded.map((f) => (f.kind === "data" ? f.data : Buffer.alloc(0))))).toEqual(chunk);
    expect(encodeDataFrames(Buffer.alloc(0))).toEqual([]);
  });
});
