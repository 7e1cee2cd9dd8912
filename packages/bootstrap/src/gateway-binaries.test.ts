import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findGatewayBinary, shebangNodeFlags } from "./gateway-binaries.js";

const dir = mkdtempSync(join(tmpdir(), "osgw-bin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bundle(name: string, shebang: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${shebang}\nconsole.log("x");\n`);
  return file;
}

describe("a bundle's Node flags", () => {
  it("are read from an `env -S node` shebang and passed when the bundle runs under this Node", () => {
    const file = bundle("flagged.js", "#!/usr/bin/env -S node --max-semi-space-size=1 --no-warnings");
    expect(shebangNodeFlags(file)).toEqual(["--max-semi-space-size=1", "--no-warnings"]);
    expect(findGatewayBinary({ OPENSHELL_GATEWAY_BIN: file })).toEqual({
      command: process.execPath,
      args: ["--max-semi-space-size=1", "--no-warnings", file],
    });
  });

  it("are none for a plain node shebang or none at all", () => {
    const plain = bundle("plain.js", "#!/usr/bin/env node");
    expect(shebangNodeFlags(plain)).toEqual([]);
    expect(shebangNodeFlags(bundle("bare.js", "console.log(1);"))).toEqual([]);
    expect(findGatewayBinary({ OPENSHELL_GATEWAY_BIN: plain }).args).toEqual([plain]);
  });
});
