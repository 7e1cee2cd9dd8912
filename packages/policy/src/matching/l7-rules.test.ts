import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { compileL7Rules, L7Evaluator, type L7Mode } from "./l7-rules.js";

type EndpointInit = Parameters<typeof create<typeof sandboxv1.NetworkEndpointSchema>>[1];
const evaluator = (init: EndpointInit, mode: L7Mode = "enforce", allowEncodedSlash = false) =>
  new L7Evaluator(mode, allowEncodedSlash, [
    compileL7Rules(create(sandboxv1.NetworkEndpointSchema, { protocol: "rest", ...init })),
  ]);
const allows = (l7: L7Evaluator, method: string, target: string) =>
  l7.evaluateRequest({ method, target }).allowed;

describe("L7Evaluator", () => {
  it("access presets: read-only, read-write, full", () => {
    const readOnly = evaluator({ access: "read-only" });
    expect(["GET", "HEAD", "OPTIONS"].map((m) => allows(readOnly, m, "/x"))).toEqual([true, true, true]);
    expect(allows(readOnly, "POST", "/x")).toBe(false);
    const readWrite = evaluator({ access: "read-write" });
    expect(["POST", "PUT", "PATCH"].map((m) => allows(readWrite, m, "/x"))).toEqual([true, true, true]);
    expect(allows(readWrite, "DELETE", "/x")).toBe(false);
    const full = evaluator({ access: "full" });
    expect(allows(full, "DELETE", "/x")).toBe(true);
    expect(allows(full, "PROPFIND", "/")).toBe(true);
  });

  it("explicit rules win over access (upstream: access only when rules are absent)", () => {
    const l7 = evaluator({ access: "full", rules: [{ allow: { method: "GET", path: "/only" } }] });
    expect(allows(l7, "GET", "/only")).toBe(true);
    expect(allows(l7, "DELETE", "/only")).toBe(false);
  });

  it("methods compare case-insensitively; `*` matches any; SQL-only rules never match REST", () => {
    const l7 = evaluator({
      rules: [
        { allow: { method: "post", path: "/a" } },
        { allow: { method: "*", path: "/b/*" } },
        { allow: { command: "SELECT", path: "/c" } },
      ],
    });
    expect(allows(l7, "POST", "/a")).toBe(true);
    expect(allows(l7, "Post", "/a")).toBe(true);
    expect(allows(l7, "PURGE", "/b/x")).toBe(true);
    expect(allows(l7, "PURGE", "/b/x/y")).toBe(false);
    expect(allows(l7, "GET", "/c")).toBe(false);
  });

  it("an allow query matcher needs its name present and every value matching", () => {
    const l7 = evaluator({
      rules: [
        {
          allow: {
            method: "GET",
            path: "/items",
            query: { state: { glob: "open" }, per_page: { any: ["1?", "5"] } },
          },
        },
      ],
    });
    expect(allows(l7, "GET", "/items?state=open&per_page=10")).toBe(true);
    expect(allows(l7, "GET", "/items?state=open&per_page=5&per_page=50")).toBe(false);
    expect(allows(l7, "GET", "/items?state=open")).toBe(false);
    expect(allows(l7, "GET", "/items?state=closed&per_page=5")).toBe(false);
  });

  it("a deny query matcher fires when every named param is present and any of its values matches", () => {
    const l7 = evaluator({
      access: "full",
      denyRules: [{ method: "*", path: "/admin/**", query: { force: { glob: "true" } } }],
    });
    expect(allows(l7, "GET", "/admin/x")).toBe(true);
    expect(allows(l7, "GET", "/admin/x?force=false")).toBe(true);
    expect(l7.evaluateRequest({ method: "DELETE", target: "/admin/x?force=false&force=true" })).toMatchObject(
      {
        allowed: false,
        rule: "* /admin/**",
        reason: "DELETE /admin/x blocked by deny rule",
      },
    );
  });

  it("deny wins over allow, also in audit mode (which still forwards)", () => {
    const l7 = evaluator({ access: "full", denyRules: [{ method: "DELETE", path: "**" }] }, "audit");
    expect(l7.evaluateRequest({ method: "DELETE", target: "/x" })).toMatchObject({
      allowed: false,
      forward: true,
      mode: "audit",
    });
    expect(l7.evaluateRequest({ method: "GET", target: "/x" })).toMatchObject({
      allowed: true,
      forward: true,
    });
  });

  it("allow_encoded_slash keeps %2F in the canonical path the rules see", () => {
    const l7 = evaluator({ rules: [{ allow: { method: "GET", path: "/repos/*/issues" } }] }, "enforce", true);
    expect(l7.evaluateRequest({ method: "GET", target: "/repos/group%2fproject/issues" })).toMatchObject({
      allowed: true,
      canonicalPath: "/repos/group%2Fproject/issues",
    });
    const strict = evaluator({ rules: [{ allow: { method: "GET", path: "/repos/*/issues" } }] });
    expect(strict.evaluateRequest({ method: "GET", target: "/repos/group%2fproject/issues" })).toMatchObject({
      allowed: false,
      forward: false,
    });
  });

  it("refuses asterisk-form and relative targets, in audit mode too", () => {
    const l7 = evaluator({ access: "full" }, "audit");
    expect(l7.evaluateRequest({ method: "OPTIONS", target: "*" })).toEqual({
      allowed: false,
      forward: false,
      mode: "audit",
      reason: "request-target is not a valid origin-form path",
    });
  });

  it('an empty path pattern matches nothing (as upstream\'s glob.match of "")', () => {
    const l7 = evaluator({ rules: [{ allow: { method: "GET" } }] });
    expect(allows(l7, "GET", "/")).toBe(false);
  });
});
