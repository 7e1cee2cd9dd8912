/**
 * Text from a sandbox (log lines, events, names, remote stderr) is hostile: an ESC sequence can
 * retitle or clear the terminal, a CR can overwrite a line to fake output, and a C1 CSI (U+009B)
 * starts a sequence on terminals that honour 8-bit controls. Every such string is passed through
 * here before it is printed as text; `-o json` output is not (JSON escapes control characters
 * itself, and its values must stay exact).
 */

export interface TerminalSafeOptions {
  /** Keep line feeds and tabs (for messages that are legitimately multi-line, e.g. remote stderr). */
  multiline?: boolean;
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

// C0 controls (ESC among them), DEL and C1 controls: matching them is the point here.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters this module escapes
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

/** `text` with every control character shown as an escape (`\x1b`, `\r`, `\u009b`), never sent raw. */
export function terminalSafe(text: string, options: TerminalSafeOptions = {}): string {
  return text.replace(CONTROL_CHARACTERS, (char) => {
    if (options.multiline && (char === "\n" || char === "\t")) return char;
    const short = SHORT_ESCAPES[char];
    if (short) return short;
    const code = char.charCodeAt(0);
    return code < 0x80
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
