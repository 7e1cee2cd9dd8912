import { describe, expect, it } from "vitest";
import {
  decodeRelayFrame,
  encodeDataFrame,
  encodeDataFrames,
  encodeInitFrame,
  RELAY_FRAME_BYTES,
  RelayFrameDecoder,
  RelayFrameError,
  type RelayWireFrame,
} from "./relay-frame-codec.js";

const dataOf = (frame: RelayWireFrame | undefined) => (frame?.kind === "data" ? frame.data : undefined);

describe("relay frame encoding", () => {
  it("writes the gRPC prefix and protobuf bytes of an init frame", () => {
    expect([...encodeInitFrame("abc")]).toEqual([0, 0, 0, 0, 7, 0x0a, 5, 0x0a, 3, 0x61, 0x62, 0x63]);
  });

  it("writes a multi-byte varint length for data over 127 bytes", () => {
    const frame = encodeDataFrame(Buffer.alloc(300, 9));
    expect([...frame.subarray(0, 8)]).toEqual([0, 0, 0, 0x01, 0x2f, 0x12, 0xac, 0x02]);
    expect(frame.length).toBe(5 + 3 + 300);
  });

  it("round-trips init frames, including long and non-ASCII channel ids", () => {
    for (const channelId of ["", "c", "ç-通道-🙂", "x".repeat(200)]) {
      expect(new RelayFrameDecoder().push(encodeInitFrame(channelId))).toEqual([{ kind: "init", channelId }]);
    }
  });

  it("round-trips data frames of every size class, including empty", () => {
    for (const size of [0, 1, 127, 128, 16_383, 16_384, RELAY_FRAME_BYTES, 70_000]) {
      const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7) % 256));
      const frames = new RelayFrameDecoder().push(encodeDataFrame(data));
      expect(frames).toHaveLength(1);
      expect(dataOf(frames[0])).toEqual(data);
    }
  });

  it("splits a chunk into frames of at most RELAY_FRAME_BYTES that decode back to it", () => {
    const chunk = Buffer.from(Array.from({ length: 2 * RELAY_FRAME_BYTES + 5 }, (_, i) => i % 251));
    const encoded = encodeDataFrames(chunk);
    const decoded = new RelayFrameDecoder().push(encoded);
    expect(decoded.map((f) => dataOf(f)?.length)).toEqual([RELAY_FRAME_BYTES, RELAY_FRAME_BYTES, 5]);
    expect(Buffer.concat(decoded.map((f) => dataOf(f) ?? Buffer.alloc(0)))).toEqual(chunk);
    // The same bytes as frame-by-frame encoding: the wire is unchanged.
    expect(encoded).toEqual(
      Buffer.concat([
        encodeDataFrame(chunk.subarray(0, RELAY_FRAME_BYTES)),
        encodeDataFrame(chunk.subarray(RELAY_FRAME_BYTES, 2 * RELAY_FRAME_BYTES)),
        encodeDataFrame(chunk.subarray(2 * RELAY_FRAME_BYTES)),
      ]),
    );
    expect(encodeDataFrames(Buffer.alloc(0))).toHaveLength(0);
    expect(new RelayFrameDecoder().push(encodeDataFrames(Buffer.alloc(RELAY_FRAME_BYTES)))).toHaveLength(1);
    expect(new RelayFrameDecoder().push(encodeDataFrames(Buffer.alloc(100)))).toHaveLength(1);
  });
});

describe("RelayFrameDecoder", () => {
  const wire = Buffer.concat([
    encodeInitFrame("abc"),
    encodeDataFrame(Buffer.from("hello")),
    encodeDataFrame(Buffer.alloc(70_000, 1)),
    Buffer.from([0, 0, 0, 0, 0]), // a RelayFrame with no payload
  ]);

  it("decodes frames split at every chunk size and joined together", () => {
    for (const step of [1, 2, 3, 5, 7, 4096, wire.length]) {
      const decoder = new RelayFrameDecoder();
      const frames: RelayWireFrame[] = [];
      for (let i = 0; i < wire.length; i += step) frames.push(...decoder.push(wire.subarray(i, i + step)));
      expect(frames.map((f) => f.kind)).toEqual(["init", "data", "data", "empty"]);
      expect(frames[0]).toEqual({ kind: "init", channelId: "abc" });
      expect(dataOf(frames[1])?.toString()).toBe("hello");
      expect(dataOf(frames[2])).toEqual(Buffer.alloc(70_000, 1));
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it("holds a partial frame until the rest arrives", () => {
    const frame = encodeDataFrame(Buffer.from("partial"));
    const decoder = new RelayFrameDecoder();
    expect(decoder.push(frame.subarray(0, 3))).toEqual([]);
    expect(decoder.push(frame.subarray(3, 9))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(9);
    const frames = decoder.push(frame.subarray(9));
    expect(dataOf(frames[0])?.toString()).toBe("partial");
    expect(decoder.bufferedBytes).toBe(0);
  });

  it("returns data as a view of the received chunk, not a copy", () => {
    const chunk = encodeDataFrame(Buffer.alloc(10_000, 1));
    const data = dataOf(new RelayFrameDecoder().push(chunk)[0]);
    chunk[chunk.length - 1] = 2;
    expect(data?.[data.length - 1]).toBe(2);
  });

  it("copies only a frame that straddles chunks: the frames after it stay views of their chunk", () => {
    const a = encodeDataFrame(Buffer.alloc(1000, 1));
    const b = encodeDataFrame(Buffer.alloc(1000, 2));
    const second = Buffer.concat([a.subarray(500), b]);
    const decoder = new RelayFrameDecoder();
    expect(decoder.push(a.subarray(0, 500))).toEqual([]);
    const frames = decoder.push(second);
    expect(frames.map((f) => dataOf(f)?.length)).toEqual([1000, 1000]);
    second[second.length - 1] = 3;
    expect(dataOf(frames[1])?.[999]).toBe(3);
    expect(dataOf(frames[0])).toEqual(Buffer.alloc(1000, 1));
  });

  it("rejects compressed frames", () => {
    expect(() => new RelayFrameDecoder().push(Buffer.from([1, 0, 0, 0, 0]))).toThrow(RelayFrameError);
    expect(() => new RelayFrameDecoder().push(Buffer.from([1, 0, 0, 0, 0]))).toThrow("compressed");
  });

  it("rejects a frame over the size limit from its prefix alone, before buffering it", () => {
    const decoder = new RelayFrameDecoder(10);
    expect(decoder.push(encodeDataFrame(Buffer.alloc(8)))).toHaveLength(1);
    expect(() => decoder.push(Buffer.from([0, 0, 0, 0, 11]))).toThrow("relay frame of 11 bytes exceeds 10");
    expect(() => new RelayFrameDecoder().push(Buffer.from([0, 0xff, 0xff, 0xff, 0xff]))).toThrow(
      RelayFrameError,
    );
  });
});

describe("decodeRelayFrame", () => {
  it("skips unknown fields of every wire type", () => {
    const message = Buffer.concat([
      Buffer.from([(7 << 3) | 0, 0x96, 0x01]), // field 7, varint
      Buffer.from([(8 << 3) | 1, ...Buffer.alloc(8, 1)]), // field 8, fixed64
      Buffer.from([(9 << 3) | 5, ...Buffer.alloc(4, 1)]), // field 9, fixed32
      Buffer.from([(10 << 3) | 2, 2, 0xaa, 0xbb]), // field 10, bytes
      Buffer.from([0x12, 2, 0x68, 0x69]), // data "hi"
    ]);
    expect(dataOf(decodeRelayFrame(message))?.toString()).toBe("hi");
  });

  it("reads the channel id past unknown fields inside RelayInit", () => {
    const init = Buffer.from([(2 << 3) | 0, 5, 0x0a, 2, 0x69, 0x64]);
    const message = Buffer.concat([Buffer.from([0x0a, init.length]), init]);
    expect(decodeRelayFrame(message)).toEqual({ kind: "init", channelId: "id" });
  });

  it("rejects a length-delimited field longer than the message", () => {
    expect(() => decodeRelayFrame(Buffer.from([0x12, 10, 1, 2]))).toThrow("truncated relay frame");
  });

  it("rejects a varint that never ends", () => {
    expect(() => decodeRelayFrame(Buffer.from([0x12, 0x80, 0x80]))).toThrow("truncated varint");
    expect(() => decodeRelayFrame(Buffer.alloc(12, 0xff))).toThrow(RelayFrameError);
    // Over 10 bytes is no valid varint even when it ends.
    const overlong = Buffer.from([0x12, ...Buffer.alloc(10, 0x80), 0x01, 0x68]);
    expect(() => decodeRelayFrame(overlong)).toThrow("varint");
  });

  it("rejects the deprecated group wire types", () => {
    expect(() => decodeRelayFrame(Buffer.from([(3 << 3) | 3]))).toThrow("unsupported protobuf wire type 3");
    expect(() => new RelayFrameDecoder().push(Buffer.from([0, 0, 0, 0, 1, (3 << 3) | 4]))).toThrow(
      "wire type 4",
    );
  });
});
