import { readFileSync } from "node:fs";

const MAX_LINE_CHARS = 200;

/**
 * The last lines of a VM's console, safe to show: the console is sandbox output, so control
 * characters (terminal escapes, carriage returns, bidi overrides) are shown as `\xNN`/`\u{N}`
 * escapes and the tail is limited in lines and line length.
 */
export function consoleTail(file: string, maxLines: number): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return "";
  }
  return escapeConsoleText(text.trimEnd().split("\n").slice(-maxLines).join("\n"));
}

/** Escapes every control character but the line feed and tab; cuts lines at 200 characters. */
export function escapeConsoleText(text: string): string {
  return text
    .split("\n")
    .map((line) => {
      const escaped = line.replace(
        // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
        /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
        (c) => {
          const code = c.charCodeAt(0);
          return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
        },
      );
      return escaped.length > MAX_LINE_CHARS ? `${escaped.slice(0, MAX_LINE_CHARS)}…` : escaped;
    })
    .join("\n");
}
