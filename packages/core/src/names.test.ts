import { describe, expect, it } from "vitest";
import { generateSandboxName, randomLetters } from "./names.js";

describe("names", () => {
  it("generates two lowercase words joined by a dash", () => {
    for (let i = 0; i < 200; i++) expect(generateSandboxName()).toMatch(/^[a-z]+-[a-z]+$/);
  });

  it("is driven by the random source", () => {
    expect(generateSandboxName(() => 0)).toBe("able-otter");
    expect(generateSandboxName((max) => max - 1)).not.toBe("able-otter");
  });

  it("varies", () => {
    const names = new Set(Array.from({ length: 100 }, () => generateSandboxName()));
    expect(names.size).toBeGreaterThan(50);
  });

  it("makes six random letters", () => {
    expect(randomLetters()).toMatch(/^[a-z]{6}$/);
    expect(randomLetters(3, () => 0)).toBe("aaa");
  });
});
