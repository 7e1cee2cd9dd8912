import { describe, expect, it } from "vitest";
import { canonicalizeRequestTarget, parseQuery } from "./request-target.js";

const canon = (target: string, allowEncodedSlash = false) => {
  const result = canonicalizeRequestTarget(target, allowEncodedSlash);
  return result.ok ? result.path : `ERR ${result.error}`;
};
const ERR = {
  slash: "ERR request-target contains an encoded '/' (%2F) which is not allowed on this endpoint",
  above: "ERR request-target's `..` segment would escape the path root",
  residual: "ERR request-target still contains a `.`/`..` segment after canonicalization",
  control: "ERR request-target contains a null or control byte",
  percent: "ERR request-target contains an invalid percent-encoded sequence",
};

describe("canonicalizeRequestTarget (upstream l7/path.rs)", () => {
  it("leaves a canonical path alone and returns the query verbatim", () => {
    expect(canonicalizeRequestTarget("/a/b.git/info/refs?service=git-upload-pack", false)).toEqual({
      ok: true,
      path: "/a/b.git/info/refs",
      query: "service=git-upload-pack",
      rewritten: false,
    });
    expect(canon("")).toBe("/");
    expect(canon("/")).toBe("/");
  });

  it("resolves literal and percent-encoded dot segments", () => {
    expect(canon("/a/./b")).toBe("/a/b");
    expect(canon("/a/b/.")).toBe("/a/b/");
    expect(canon("/a/../b")).toBe("/b");
    expect(canon("/a/b/..")).toBe("/a/");
    expect(canon("/public/%2e%2e/secret")).toBe("/secret");
    expect(canon("/public/%2E%2E/secret")).toBe("/secret");
    expect(canon("/public/%2e/secret")).toBe("/public/secret");
    expect(canon("/public/./../secret")).toBe("/secret");
    expect(canonicalizeRequestTarget("/a/../b", false)).toMatchObject({ rewritten: true });
  });

  it("refuses a `..` above the root", () => {
    expect(canon("/..")).toBe(ERR.above);
    expect(canon("/a/../..")).toBe(ERR.above);
    expect(canon("/a/%2e%2e/%2e%2e")).toBe(ERR.above);
    expect(canon("/api/v1/..;/..;/..;/admin/keys")).toBe(ERR.above);
  });

  it("collapses repeated slashes", () => {
    expect(canon("//")).toBe("/");
    expect(canon("//public//../secret")).toBe("/secret");
    expect(canon("/public//secret")).toBe("/public/secret");
  });

  it("refuses %2F unless the endpoint allows encoded slashes, then keeps it as %2F", () => {
    expect(canon("/a/%2f/b")).toBe(ERR.slash);
    expect(canon("/public/..%2fsecret")).toBe(ERR.slash);
    expect(canon("/public/%2E%2E%2Fsecret")).toBe(ERR.slash);
    expect(canon("/a/%2f/b", true)).toBe("/a/%2F/b");
    expect(canon("/repos/group%2fproject/issues", true)).toBe("/repos/group%2Fproject/issues");
    expect(canon("/public/..%2fsecret", true)).toBe(ERR.residual);
    expect(canon("/public/.%2fsecret", true)).toBe(ERR.residual);
  });

  it("refuses control bytes, malformed escapes, fragments, raw non-ASCII, long paths, relative targets", () => {
    expect(canon("/a%00b")).toBe(ERR.control);
    expect(canon("/a%0Ab")).toBe(ERR.control);
    expect(canon("/a%7Fb")).toBe(ERR.control);
    expect(canon("/a\nb")).toBe(ERR.control);
    expect(canon("/a%zz")).toBe(ERR.percent);
    expect(canon("/a%2")).toBe(ERR.percent);
    expect(canon("/a%")).toBe(ERR.percent);
    expect(canon("/a#b")).toBe("ERR request-target contains a fragment");
    expect(canon("/café")).toBe(
      "ERR request-target contains raw non-ASCII bytes; non-ASCII must be percent-encoded",
    );
    expect(canon(`/${"a".repeat(4096)}`)).toBe("ERR request-target exceeds the configured maximum length");
    expect(canon("a/b")).toBe("ERR request-target is not a valid origin-form path");
  });

  it("decodes unreserved bytes and normalises the rest to upper-case %HH", () => {
    expect(canon("/files/hello%20world.txt")).toBe("/files/hello%20world.txt");
    expect(canon("/search/a%3Fb")).toBe("/search/a%3Fb");
    expect(canon("/users/%40alice")).toBe("/users/@alice");
    expect(canon("/%7Euser/%61bc")).toBe("/~user/abc");
    expect(canon("/a/caf%c3%a9")).toBe("/a/caf%C3%A9");
    expect(canon("/a/%252F/b")).toBe("/a/%252F/b");
  });

  it("strips ;params before resolving dot segments", () => {
    expect(canon("/a;jsessionid=xyz/b")).toBe("/a/b");
    expect(canon("/public/..;/secret")).toBe("/secret");
    expect(canon("/public/..%3B/secret")).toBe("/secret");
    expect(canon("/public/.;x/secret")).toBe("/public/secret");
  });

  it("strips the authority of an absolute-form target, not of an embedded URL", () => {
    expect(canon("http://host/a/../b")).toBe("/b");
    expect(canon("https://host")).toBe("/");
    expect(canon("http://host:443/foo")).toBe("/foo");
    const embedded = canonicalizeRequestTarget("/fetch/http://example.test?next=http://other.test", false);
    expect(embedded).toMatchObject({
      ok: true,
      path: "/fetch/http:/example.test",
      query: "next=http://other.test",
    });
  });
});

describe("parseQuery", () => {
  it("collects repeated names, decodes form encoding, keeps bad escapes", () => {
    const params = parseQuery("q=repo%3Aa%2Fb&page=1&page=2&flag&x=a+b&bad=%zz&&e=caf%C3%A9");
    expect(Object.fromEntries(params)).toEqual({
      q: ["repo:a/b"],
      page: ["1", "2"],
      flag: [""],
      x: ["a b"],
      bad: ["%zz"],
      e: ["café"],
    });
    expect(parseQuery(undefined).size).toBe(0);
  });
});
