/**
 * HTTP request-target canonicalisation for L7 rules, as upstream's `l7/path.rs`: the path the policy
 * sees is the path the upstream server will dispatch on (the proxy should forward `path` + `?query`).
 */

/** Upstream's maximum origin-form path length, in bytes. */
const MAX_PATH_LENGTH = 4096;

export type CanonicalTarget =
  | { ok: true; path: string; query: string | undefined; rewritten: boolean }
  | { ok: false; error: string };

const ERRORS = {
  control: "request-target contains a null or control byte",
  percent: "request-target contains an invalid percent-encoded sequence",
  encodedSlash: "request-target contains an encoded '/' (%2F) which is not allowed on this endpoint",
  fragment: "request-target contains a fragment",
  nonAscii: "request-target contains raw non-ASCII bytes; non-ASCII must be percent-encoded",
  aboveRoot: "request-target's `..` segment would escape the path root",
  residualDot: "request-target still contains a `.`/`..` segment after canonicalization",
  tooLong: "request-target exceeds the configured maximum length",
  malformed: "request-target is not a valid origin-form path",
} as const;

/** Stands for a `%2F` inside a segment (raw control bytes are refused, so it cannot collide). */
const ENCODED_SLASH = "\u0001";
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/;
/** Bytes emitted literally: unreserved, sub-delims, `:` and `@` (RFC 3986 pchar without `%`). */
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;
/** A path that is already canonical: only pchars and `/`, no `%`, `;`, `//` or dot segment. */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;
const NEEDS_WORK = /\/\/|\/\.\.?(?:\/|$)/;

/**
 * Canonicalises an origin-form (`/a/b?q`) or absolute-form (`http://h/a/b`) request-target:
 * percent-decodes the path (unreserved bytes stay decoded, the rest re-encoded as upper-case `%HH`),
 * strips `;params` from each segment, resolves `.`/`..` (a `..` above the root is refused),
 * collapses repeated slashes, and refuses control bytes, raw non-ASCII, fragments, malformed
 * escapes, paths over 4096 bytes and `%2F` (unless `allowEncodedSlash`, when it is kept as `%2F`).
 * The query comes back verbatim.
 */
export function canonicalizeRequestTarget(target: string, allowEncodedSlash: boolean): CanonicalTarget {
  for (let i = 0; i < target.length; i += 1) {
    const code = target.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return { ok: false, error: ERRORS.control };
    if (code >= 0x80) return { ok: false, error: ERRORS.nonAscii };
  }
  if (target.includes("#")) return { ok: false, error: ERRORS.fragment };
  const queryAt = target.indexOf("?");
  const pathPart = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = queryAt < 0 ? undefined : target.slice(queryAt + 1);
  let rawPath = pathPart;
  const absolute = ABSOLUTE_FORM.exec(pathPart);
  if (absolute !== null) rawPath = pathPart.slice(absolute[0].length) || "/";
  if (rawPath === "") rawPath = "/";
  if (!rawPath.startsWith("/")) return { ok: false, error: ERRORS.malformed };
  if (rawPath.length > MAX_PATH_LENGTH) return { ok: false, error: ERRORS.tooLong };
  if (PLAIN_PATH.test(rawPath) && !NEEDS_WORK.test(rawPath)) {
    return { ok: true, path: rawPath, query, rewritten: false };
  }

  // Percent-decode into one char per byte (latin-1), `%2F` as the sentinel.
  let decoded = "";
  for (let i = 0; i < rawPath.length; i += 1) {
    const char = rawPath[i] as string;
    if (char !== "%") {
      decoded += char;
      continue;
    }
    const byte = Number.parseInt(rawPath.slice(i + 1, i + 3), 16);
    if (i + 2 >= rawPath.length || !/^[0-9A-Fa-f]{2}$/.test(rawPath.slice(i + 1, i + 3))) {
      return { ok: false, error: ERRORS.percent };
    }
    if (byte === 0x2f) {
      if (!allowEncodedSlash) return { ok: false, error: ERRORS.encodedSlash };
      decoded += ENCODED_SLASH;
    } else if (byte < 0x20 || byte === 0x7f) {
      return { ok: false, error: ERRORS.control };
    } else {
      decoded += String.fromCharCode(byte);
    }
    i += 2;
  }

  // Split, strip `;params` before resolving dot segments (so `..;` cannot slip past), resolve.
  const segments = decoded
    .slice(1)
    .split("/")
    .map((segment) => {
      const semicolon = segment.indexOf(";");
      return semicolon < 0 ? segment : segment.slice(0, semicolon);
    });
  const stack: string[] = [];
  const last = segments.length - 1;
  for (let index = 0; index <= last; index += 1) {
    const segment = segments[index] as string;
    if (segment === "..") {
      if (stack.pop() === undefined) return { ok: false, error: ERRORS.aboveRoot };
      if (index === last) stack.push("");
      continue;
    }
    if (segment === ".") {
      if (index === last) stack.push("");
      continue;
    }
    if (segment === "" && index !== last) continue;
    stack.push(segment);
  }
  for (const segment of stack) {
    for (const part of segment.split(ENCODED_SLASH)) {
      if (part === "." || part === "..") return { ok: false, error: ERRORS.residualDot };
    }
  }

  let path = "/";
  stack.forEach((segment, index) => {
    if (index > 0) path += "/";
    for (const char of segment) {
      if (char === ENCODED_SLASH) path += "%2F";
      else if (PCHAR.test(char)) path += char;
      else path += `%${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
    }
  });
  return { ok: true, path, query, rewritten: path !== rawPath };
}

/**
 * A query string as name → values (`a=1&a=2&b` gives a: [1, 2], b: [""]), each part form-decoded
 * (`+` is a space; `%HH` bytes read as UTF-8; an invalid escape stays as written).
 */
export function parseQuery(query: string | undefined): Map<string, string[]> {
  const params = new Map<string, string[]>();
  if (query === undefined || query === "") return params;
  for (const part of query.split("&")) {
    if (part === "") continue;
    const equals = part.indexOf("=");
    const name = formDecode(equals < 0 ? part : part.slice(0, equals));
    const value = equals < 0 ? "" : formDecode(part.slice(equals + 1));
    const values = params.get(name);
    if (values === undefined) params.set(name, [value]);
    else values.push(value);
  }
  return params;
}

const utf8 = new TextDecoder("utf-8");

function formDecode(text: string): string {
  if (!text.includes("%") && !text.includes("+")) return text;
  const spaced = text.replaceAll("+", " ");
  if (!spaced.includes("%")) return spaced;
  const bytes: number[] = [];
  for (let i = 0; i < spaced.length; i += 1) {
    const hex = spaced.slice(i + 1, i + 3);
    if (spaced[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      for (const byte of Buffer.from(spaced[i] as string, "utf8")) bytes.push(byte);
    }
  }
  return utf8.decode(Uint8Array.from(bytes));
}
