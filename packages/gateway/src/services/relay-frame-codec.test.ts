import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { encodeDataFrame, encodeInitFrame } from "@openshell/core";
import { RelayFrameSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";

// The codec itself is tested beside it (packages/core/src/relay-frame-codec.test.ts); this checks its
// bytes against protobuf-es and the generated schema, which core does not depend on.
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
});
