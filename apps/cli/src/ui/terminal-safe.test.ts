import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { renderError } from "./cli-error.js";
import { Output } from "./output.js";
import { terminalSafe } from "./terminal-safe.js";

const TITLE = "\u001b]0;pwned\u0007";
const CLEAR = "\u001b[2J";
const C1_CSI = "\u009b31m";

/** Any character a terminal acts on: C0 (tab and line feed aside), DEL, C1. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: what these tests look for
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe("terminalSafe", () => {
  it("escapes ESC sequences, BEL, CR, DEL and C1 controls, keeping the rest", () => {
    expect(terminalSafe(`${TITLE}${CLEAR}fake\rreal ${C1_CSI} \u007f ünï ✓`)).toBe(
      "\\x1b]0;pwned\\x07\\x1b[2Jfake\\rreal \\u009b31m \\x7f ünï ✓",
    );
  });

  it("keeps line feeds and tabs only for multi-line text", () => {
    expect(terminalSafe("a\nb\tc\r\n")).toBe("a\\nb\\tc\\r\\n");
    expect(terminalSafe("a\nb\tc\r\n", { multiline: true })).toBe("a\nb\tc\\r\n");
    expect(terminalSafe("\u0000\u001f", { multiline: true })).toBe("\\x00\\x1f");
  });
});

describe("terminal sinks", () => {
  it("table cells are escaped, column widths counted on the escaped text", () => {
    const stdout = new PassThrough();
    const output = new Output({ stdout, stderr: new PassThrough(), env: {} });
    output.table(
      ["NAME", "DETAIL"],
      [
        [`a${CLEAR}`, `Crashed: ${TITLE}`],
        ["bb", "ok"],
      ],
    );
    const text = stdout.read().toString();
    expect(text).not.toMatch(RAW_CONTROL);
    expect(text).toBe("NAME      DETAIL\na\\x1b[2J  Crashed: \\x1b]0;pwned\\x07\nbb        ok\n");
  });

  it("error messages keep their lines but lose control characters", () => {
    const error = new Error(`download failed: remote said:\n${TITLE}line 1\r\tline 2${C1_CSI}`);
    const { text } = renderError(error, false);
    expect(text).toBe("download failed: remote said:\n\\x1b]0;pwned\\x07line 1\\r\tline 2\\u009b31m");
  });
});
