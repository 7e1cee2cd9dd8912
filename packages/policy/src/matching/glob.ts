import { OpenShellError } from "@openshell/core";

/**
 * Which glob dialect a pattern is compiled for, as upstream's rego calls `glob.match` (regorus, whose
 * matcher is wax):
 * - `host`: `.` is the delimiter; `*` matches inside one label, `**` any run of labels. The pattern
 *   and the host are compared lower-cased.
 * - `path`: `/` is the delimiter (binary paths and L7 request paths); `*` stays inside one segment;
 *   `**` as a whole segment matches zero or more segments (`/a/**` matches `/a`, `/a/`, `/a/b/c`;
 *   `/**\/x` matches `/x`), elsewhere it matches anything.
 * - `query`: query values. Upstream passes no delimiters, which regorus turns into `.`: `*` does not
 *   cross a `.` (`*` does not match `1.2`), `**` does; `/` is an ordinary character.
 */
export type GlobDialect = "host" | "path" | "query";

/** A compiled glob: `test` answers whether a whole value matches. */
export interface GlobMatcher {
  readonly pattern: string;
  test(value: string): boolean;
}

const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|/-]/g;

/**
 * Compiles a glob once into a matcher. Supports `*`, `**`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`,
 * `{a,b}` and `\` escapes. Throws `invalid_argument` for an unclosed `[` or `{` or a trailing `\`
 * (regorus refuses those at evaluation, which upstream turns into a denial).
 */
export function compileGlob(pattern: string, dialect: GlobDialect): GlobMatcher {
  const source = dialect === "host" ? pattern.toLowerCase() : pattern;
  if (source === "**") return { pattern, test: () => true };
  if (!/[*?[{\\]/.test(source)) {
    return dialect === "host"
      ? { pattern, test: (value) => value === source || value.toLowerCase() === source }
      : { pattern, test: (value) => value === source };
  }
  const delimiter = dialect === "path" ? "/" : ".";
  const regex = new RegExp(`^${translate(source, delimiter, dialect === "path", pattern)}$`, "s");
  return dialect === "host"
    ? { pattern, test: (value) => regex.test(value.toLowerCase()) }
    : { pattern, test: (value) => regex.test(value) };
}

function escapeChar(char: string): string {
  return char.replace(REGEX_SPECIAL, "\\$&");
}

function invalid(original: string, why: string): OpenShellError {
  return new OpenShellError("invalid_argument", `invalid glob '${original}': ${why}`);
}

/** The regex source for `glob`; `segments` gives `**` its whole-segment meaning (path dialect). */
function translate(glob: string, delimiter: string, segments: boolean, original: string): string {
  const notDelimiter = `[^${escapeChar(delimiter)}]`;
  let out = "";
  let i = 0;
  while (i < glob.length) {
    const char = glob[i] as string;
    if (char === "\\") {
      const next = glob[i + 1];
      if (next === undefined) throw invalid(original, "trailing '\\'");
      out += escapeChar(next);
      i += 2;
      continue;
    }
    if (char === "*") {
      if (glob[i + 1] !== "*") {
        out += `${notDelimiter}*`;
        i += 1;
        continue;
      }
      let end = i + 2;
      while (glob[end] === "*") end += 1;
      const startsSegment = i === 0 || glob[i - 1] === delimiter;
      const endsSegment = end === glob.length || glob[end] === delimiter;
      if (segments && startsSegment && endsSegment) {
        if (end === glob.length) {
          // Trailing `/**`: the segment before it, with or without anything below it.
          const slash = `\\${delimiter}`;
          if (out.endsWith(slash)) out = `${out.slice(0, -slash.length)}(?:${slash}.*)?`;
          else out += ".*";
          i = end;
        } else {
          // `**/` at the start or in the middle: zero or more whole segments.
          out += `(?:.*\\${delimiter})?`;
          i = end + 1;
        }
        continue;
      }
      out += ".*";
      i = end;
      continue;
    }
    if (char === "?") {
      out += notDelimiter;
      i += 1;
      continue;
    }
    if (char === "[") {
      const close = findClassEnd(glob, i);
      if (close < 0) throw invalid(original, "unclosed '['");
      out += translateClass(glob.slice(i + 1, close), delimiter);
      i = close + 1;
      continue;
    }
    if (char === "{") {
      const close = findBraceEnd(glob, i);
      if (close < 0) throw invalid(original, "unclosed '{'");
      const alternatives = splitAlternatives(glob.slice(i + 1, close));
      out += `(?:${alternatives.map((alt) => translate(alt, delimiter, false, original)).join("|")})`;
      i = close + 1;
      continue;
    }
    out += escapeChar(char);
    i += 1;
  }
  return out;
}

function findClassEnd(glob: string, open: number): number {
  let i = open + 1;
  if (glob[i] === "!" || glob[i] === "^") i += 1;
  if (glob[i] === "]") i += 1; // a leading `]` is a member
  for (; i < glob.length; i += 1) {
    if (glob[i] === "\\") i += 1;
    else if (glob[i] === "]") return i;
  }
  return -1;
}

function translateClass(body: string, delimiter: string): string {
  let negated = false;
  let rest = body;
  if (rest.startsWith("!") || rest.startsWith("^")) {
    negated = true;
    rest = rest.slice(1);
  }
  let members = "";
  for (let i = 0; i < rest.length; i += 1) {
    const char = rest[i] as string;
    if (char === "\\" && i + 1 < rest.length) {
      members += escapeChar(rest[i + 1] as string);
      i += 1;
    } else if (char === "-" && i > 0 && i < rest.length - 1) {
      members += "-";
    } else {
      members += escapeChar(char);
    }
  }
  // A class never matches the delimiter, as wax's classes never match a separator.
  return negated ? `[^${members}${escapeChar(delimiter)}]` : `(?!${escapeChar(delimiter)})[${members}]`;
}

function findBraceEnd(glob: string, open: number): number {
  let depth = 0;
  for (let i = open; i < glob.length; i += 1) {
    const char = glob[i];
    if (char === "\\") i += 1;
    else if (char === "{") depth += 1;
    else if (char === "}") {
      depth -= 1;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function splitAlternatives(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i += 1) {
    const char = body[i];
    if (char === "\\") i += 1;
    else if (char === "{" || char === "[") depth += 1;
    else if (char === "}" || char === "]") depth -= 1;
    else if (char === "," && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts;
}
