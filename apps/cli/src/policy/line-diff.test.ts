import { describe, expect, it } from "vitest";
import { lineDiffHunks } from "./line-diff.js";

describe("lineDiffHunks", () => {
  it("is empty for equal texts", () => {
    expect(lineDiffHunks("a\nb\n", "a\nb\n")).toEqual([]);
  });

  it("marks added and removed lines and keeps the common ones", () => {
    expect(lineDiffHunks("a\nb\nc\n", "a\nc\nd\n")).toEqual(["  a", "- b", "  c", "+ d"]);
  });

  it("keeps three lines of context around each change and elides the rest", () => {
    const before = `${Array.from({ length: 20 }, (_, i) => `l${i}`).join("\n")}\n`;
    const after = before.replace("l10\n", "l10x\n");
    expect(lineDiffHunks(before, after)).toEqual([
      "  …",
      "  l7",
      "  l8",
      "  l9",
      "- l10",
      "+ l10x",
      "  l11",
      "  l12",
      "  l13",
      "  …",
    ]);
    expect(lineDiffHunks("a\nb\n", "a\nc\n", 0)).toEqual(["  …", "- b", "+ c"]);
  });

  it("handles an empty side", () => {
    expect(lineDiffHunks("", "x\n")).toEqual(["+ x"]);
    expect(lineDiffHunks("x\n", "")).toEqual(["- x"]);
  });
});
