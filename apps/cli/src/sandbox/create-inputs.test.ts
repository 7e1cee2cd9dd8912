import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveSandboxImage } from "./create-inputs.js";

describe("resolveSandboxImage (--from)", () => {
  it("keeps an image reference and makes a bare name a community image", () => {
    expect(resolveSandboxImage("registry.example.com/team/agent:2", {})).toBe(
      "registry.example.com/team/agent:2",
    );
    expect(resolveSandboxImage("debian:bookworm", {})).toBe("debian:bookworm");
    expect(resolveSandboxImage("base", {})).toBe("ghcr.io/nvidia/openshell-community/sandboxes/base:latest");
    expect(
      resolveSandboxImage("base", { OPENSHELL_COMMUNITY_REGISTRY: "mirror.example.com/sandboxes" }),
    ).toBe("mirror.example.com/sandboxes/base:latest");
  });

  it("refuses an empty value and a local Dockerfile or build context", () => {
    expect(() => resolveSandboxImage(" ", {})).toThrow("--from must not be empty");
    const dir = mkdtempSync(join(tmpdir(), "from-"));
    writeFileSync(join(dir, "Dockerfile"), "FROM scratch\n");
    expect(() => resolveSandboxImage(dir, {})).toThrow("building images is not supported");
    expect(() => resolveSandboxImage(join(dir, "Dockerfile"), {})).toThrow("is a local path");
    rmSync(dir, { recursive: true, force: true });
  });
});
