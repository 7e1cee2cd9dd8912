import { describe, expect, it } from "vitest";
import { installLightHeaders, LightHeaders } from "./light-headers.js";

type AnyHeaders = {
  append(name: string, value: string): void;
  set(name: string, value: string): void;
  get(name: string): string | null;
  has(name: string): boolean;
  delete(name: string): void;
  getSetCookie(): string[];
  forEach(callback: (value: string, name: string) => void): void;
  [Symbol.iterator](): Iterator<[string, string]>;
};

/** Runs the same script on Node's Headers and on ours; every observation must match. */
function observe(make: (init?: unknown) => AnyHeaders, script: (h: AnyHeaders) => unknown[], init?: unknown) {
  let h: AnyHeaders;
  try {
    h = make(init);
  } catch (error) {
    return [`ctor threw ${(error as Error).constructor.name}`];
  }
  const seen: unknown[] = [];
  try {
    seen.push(...script(h));
  } catch (error) {
    seen.push(`threw ${(error as Error).constructor.name}`);
  }
  const viaForEach: string[] = [];
  h.forEach((value, name) => {
    viaForEach.push(`${name}=${value}`);
  });
  seen.push([...(h as Iterable<[string, string]>)], viaForEach, h.getSetCookie());
  return seen;
}

const real = (init?: unknown) =>
  new Headers(init as ConstructorParameters<typeof Headers>[0]) as unknown as AnyHeaders;
const light = (init?: unknown) => new LightHeaders(init as never) as unknown as AnyHeaders;

const scripts: Array<[string, (h: AnyHeaders) => unknown[], unknown?]> = [
  ["empty", () => []],
  [
    "case-insensitive set/get/has/delete",
    (h) => {
      h.set("Content-Type", "application/grpc");
      h.set("X-Custom", "a");
      h.delete("x-CUSTOM");
      return [h.get("content-type"), h.has("CONTENT-TYPE"), h.has("x-custom"), h.get("missing")];
    },
  ],
  [
    "append joins, set replaces, values are trimmed",
    (h) => {
      h.append("Accept", "a");
      h.append("accept", "  b\t");
      h.set("te", " trailers ");
      return [h.get("accept"), h.get("te")];
    },
  ],
  [
    "iteration is sorted; set-cookie entries stay apart",
    (h) => {
      h.append("zeta", "1");
      h.append("Set-Cookie", "a=1");
      h.append("alpha", "2");
      h.append("set-cookie", "b=2");
      return [h.get("set-cookie"), h.has("set-cookie")];
    },
  ],
  ["invalid name", (h) => [h.set("bad name", "x")]],
  ["invalid value", (h) => [h.set("x", "a\r\nb")]],
  ["init from a record", () => [], { "Grpc-Timeout": "100m", te: "trailers" }],
  [
    "init from pairs",
    () => [],
    [
      ["a", "1"],
      ["A", "2"],
      ["b", "3"],
    ],
  ],
  ["init from a bad pair", () => [], [["a", "1", "extra"]]],
];

describe("LightHeaders", () => {
  for (const [name, script, init] of scripts) {
    it(`behaves like Node's Headers: ${name}`, () => {
      expect(observe(light, script, init)).toEqual(observe(real, script, init));
    });
  }

  it("copies another LightHeaders and Node's own Headers", () => {
    const source = new LightHeaders({ a: "1" });
    source.append("set-cookie", "c=1");
    expect([...new LightHeaders(source)]).toEqual([...source]);
    expect([...new LightHeaders(new Headers({ b: "2" }) as never)]).toEqual([["b", "2"]]);
  });

  it("installs itself without touching Node's lazy Headers global", () => {
    const target = {} as typeof globalThis;
    let reads = 0;
    Object.defineProperty(target, "Headers", {
      configurable: true,
      get: () => {
        reads++;
        return Headers;
      },
      set(value) {
        Object.defineProperty(target, "Headers", { value, writable: true, configurable: true });
      },
    });
    installLightHeaders(target);
    expect(reads).toBe(0);
    expect(target.Headers).toBe(LightHeaders);
  });
});
