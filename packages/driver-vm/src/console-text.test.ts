import { describe, expect, it } from "vitest";
import { escapeConsoleText } from "./console-text.js";

describe("escapeConsoleText", () => {
  it("escapes terminal control sequences, carriage returns and bidi overrides; keeps lines and tabs", () => {
    expect(escapeConsoleText("a\x1b]0;pwned\x07b\r\nc\td\u202ee")).toBe(
      "a\\x1b]0;pwned\\x07b\\x0d\nc\td\\u{202e}e",
    );
    expect(escapeConsoleText("\x9b2J")).toBe("\\x9b2J");
  });

  it("cuts long lines", () => {
    expect(escapeConsoleText("x".repeat(500))).toBe(`${"x".repeat(200)}…`);
  });
});
