import { describe, expect, it } from "vitest";
import { compileGlob, type GlobDialect } from "./glob.js";

const matches = (pattern: string, dialect: GlobDialect, value: string) =>
  compileGlob(pattern, dialect).test(value);

describe("compileGlob: host globs (`.`-delimited, case-insensitive)", () => {
  it("exact hosts compare case-insensitively", () => {
    expect(matches("API.GitHub.com", "host", "api.github.COM")).toBe(true);
    expect(matches("api.github.com", "host", "api.github.co")).toBe(false);
  });

  it("`*` stays inside one label", () => {
    expect(matches("*.example.com", "host", "api.example.com")).toBe(true);
    expect(matches("*.example.com", "host", "API.EXAMPLE.COM")).toBe(true);
    expect(matches("*.example.com", "host", "a.b.example.com")).toBe(false);
    expect(matches("*.example.com", "host", "example.com")).toBe(false);
    expect(matches("*.example.com", "host", "evilexample.com")).toBe(false);
    expect(matches("api-*.example.com", "host", "api-eu.example.com")).toBe(true);
  });

  it("`**` crosses labels but needs at least the dot before the suffix", () => {
    expect(matches("**.example.com", "host", "a.example.com")).toBe(true);
    expect(matches("**.example.com", "host", "a.b.c.example.com")).toBe(true);
    expect(matches("**.example.com", "host", "example.com")).toBe(false);
    expect(matches("**.example.com", "host", "badexample.com")).toBe(false);
  });

  it("`?`, classes and alternatives never match the delimiter", () => {
    expect(matches("a?.example.com", "host", "ab.example.com")).toBe(true);
    expect(matches("a?example.com", "host", "a.example.com")).toBe(false);
    expect(matches("[ab]1.example.com", "host", "b1.example.com")).toBe(true);
    expect(matches("[!ab]1.example.com", "host", "c1.example.com")).toBe(true);
    expect(matches("[!ab]1.example.com", "host", "a1.example.com")).toBe(false);
    expect(matches("{api,www}.example.com", "host", "www.example.com")).toBe(true);
    expect(matches("{api,www}.example.com", "host", "ftp.example.com")).toBe(false);
  });

  it("regex metacharacters are literals", () => {
    expect(matches("*.ex+ample.com", "host", "a.ex+ample.com")).toBe(true);
    expect(matches("*.ex+ample.com", "host", "a.exxample.com")).toBe(false);
  });
});

describe("compileGlob: path globs (`/`-delimited)", () => {
  it("`*` stays inside one segment", () => {
    expect(matches("/usr/bin/*", "path", "/usr/bin/curl")).toBe(true);
    expect(matches("/usr/bin/*", "path", "/usr/bin/sub/curl")).toBe(false);
    expect(matches("/repos/*/secrets/**", "path", "/repos/x/secrets/a/b")).toBe(true);
    expect(matches("/repos/*/secrets/**", "path", "/repos/x/y/secrets/a")).toBe(false);
  });

  it("a trailing `/**` matches the directory itself and anything below", () => {
    expect(matches("/api/**", "path", "/api")).toBe(true);
    expect(matches("/api/**", "path", "/api/")).toBe(true);
    expect(matches("/api/**", "path", "/api/v1/x")).toBe(true);
    expect(matches("/api/**", "path", "/apix")).toBe(false);
    expect(matches("/home/*/.local/bin/**", "path", "/home/u/.local/bin/tool")).toBe(true);
  });

  it("`/**/` matches zero or more segments; `**` alone matches everything", () => {
    expect(matches("/**/info/refs*", "path", "/info/refs")).toBe(true);
    expect(matches("/**/info/refs*", "path", "/o/r.git/info/refs")).toBe(true);
    expect(matches("/**/git-upload-pack", "path", "/o/r.git/git-upload-pack")).toBe(true);
    expect(matches("/**/git-upload-pack", "path", "/o/r.git/git-receive-pack")).toBe(false);
    expect(matches("**", "path", "/anything/at/all")).toBe(true);
    expect(matches("**/x", "path", "a/b/x")).toBe(true);
  });

  it("`**` inside a segment matches across segments", () => {
    expect(matches("/a**z", "path", "/a/b/z")).toBe(true);
  });

  it("paths are case-sensitive", () => {
    expect(matches("/API/*", "path", "/api/x")).toBe(false);
  });

  it("escapes make metacharacters literal", () => {
    expect(matches("/a\\*b", "path", "/a*b")).toBe(true);
    expect(matches("/a\\*b", "path", "/axb")).toBe(false);
  });
});

describe("compileGlob: query globs (regorus' default `.` delimiter)", () => {
  it("`*` does not cross a dot, `**` does, `/` is ordinary", () => {
    expect(matches("repo:*", "query", "repo:NVIDIA/OpenShell")).toBe(true);
    expect(matches("*", "query", "1.2")).toBe(false);
    expect(matches("**", "query", "1.2")).toBe(true);
    expect(matches("1.*", "query", "1.2")).toBe(true);
  });
});

describe("compileGlob: invalid globs", () => {
  it("throws invalid_argument for an unclosed class or brace and a trailing escape", () => {
    for (const pattern of ["/a/[bc", "/a/{b,c", "/a\\"]) {
      expect(() => compileGlob(pattern, "path")).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    }
  });
});
