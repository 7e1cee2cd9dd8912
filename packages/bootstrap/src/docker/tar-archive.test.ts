import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { packTar, unpackTar } from "./tar-archive.js";

describe("tar archive", () => {
  it("packs files GNU tar extracts with their modes, and reads GNU tar's archives back", () => {
    const dir = mkdtempSync(join(tmpdir(), "ostar-"));
    try {
      const archive = packTar(
        ["pki"],
        [
          { name: "pki/ca.crt", content: "certificate\n" },
          { name: "pki/ca.key", content: Buffer.alloc(1500, 7), mode: 0o600 },
        ],
      );
      writeFileSync(join(dir, "a.tar"), archive);
      execFileSync("tar", ["-xf", join(dir, "a.tar"), "-C", dir]);
      expect(readFileSync(join(dir, "pki", "ca.crt"), "utf8")).toBe("certificate\n");
      expect(readFileSync(join(dir, "pki", "ca.key"))).toEqual(Buffer.alloc(1500, 7));
      expect(statSync(join(dir, "pki", "ca.key")).mode & 0o777).toBe(0o600);

      const gnu = execFileSync("tar", ["-cf", "-", "-C", dir, "pki"]);
      const files = unpackTar(gnu);
      expect([...files.keys()].sort()).toEqual(["pki/ca.crt", "pki/ca.key"]);
      expect(files.get("pki/ca.key")).toEqual(Buffer.alloc(1500, 7));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
