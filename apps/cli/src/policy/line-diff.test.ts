import { describe, expect, it } from "vitest";
import { lineDiff } from "./line-diff.js";

describe("lineDiff", () => {
  it("is empty for equal texts", () => {
    expect(lineDiff("a\nb\n", "a\nb\n")).toEqual([]);
  });

  it("marks added and removed lines and keeps the common ones", () => {
    expect(lineDiff("a\nb\nc\n", "a\nc\nd\n")).toEqual(["  a", "- b", "  c", "+ d"]);
  });

  it("handles an empty side", () => {
    expect(lineDiff("", "x\n")).toEqual(["+ x"]);
    expect(lineDiff("x\n", "")).toEqual(["- x"]);
  });
});
