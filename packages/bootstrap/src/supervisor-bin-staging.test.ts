import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stagingStamp } from "./supervisor-bin-staging.js";

/** A supervisor package as npm lays it out: staging files, bundle, launcher source, native modules beside it. */
function fakeInstall(root: string): { script: string; write: (path: string, text: string) => void } {
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  const supervisor = "node_modules/@openshell/sandbox-supervisor";
  write(`${supervisor}/package.json`, JSON.stringify({ name: "@openshell/sandbox-supervisor" }));
  write(`${supervisor}/staging/stage-supervisor-bin.sh`, "#!/bin/bash\n");
  write(`${supervisor}/staging/openshell-sandbox-entry.c`, "int main(void) { return 0; }\n");
  write(`${supervisor}/staging/native-closure.mjs`, "// closure\n");
  write(`${supervisor}/dist/openshell-sandbox.js`, "// bundle\n");
  write(`${supervisor}/native/openshell-launch.c`, "// launcher\n");
  write("node_modules/ssh2/package.json", JSON.stringify({ name: "ssh2", version: "1.17.0" }));
  write("node_modules/node-pty/package.json", JSON.stringify({ name: "node-pty", version: "1.1.0" }));
  write("bin/node", "not really node");
  return { script: join(root, supervisor, "staging", "stage-supervisor-bin.sh"), write };
}

describe("the supervisor staging's stamp (a gateway start skips staging when it is unchanged)", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("is stable for the same inputs and changes with each staged input, native module versions included", () => {
    const root = mkdtempSync(join(tmpdir(), "ossup-stamp-"));
    dirs.push(root);
    const { script, write } = fakeInstall(root);
    const node = join(root, "bin", "node");
    const first = stagingStamp(script, node);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(stagingStamp(script, node)).toBe(first);

    const seen = new Set([first]);
    const changes: Array<[string, string]> = [
      ["node_modules/ssh2/package.json", JSON.stringify({ name: "ssh2", version: "1.18.0" })],
      ["node_modules/node-pty/package.json", JSON.stringify({ name: "node-pty", version: "1.2.0" })],
      [
        "node_modules/@openshell/sandbox-supervisor/staging/openshell-sandbox-entry.c",
        "int main(void) { return 1; }\n",
      ],
      ["node_modules/@openshell/sandbox-supervisor/dist/openshell-sandbox.js", "// bundle 2\n"],
      ["node_modules/@openshell/sandbox-supervisor/native/openshell-launch.c", "// launcher 2\n"],
    ];
    for (const [path, text] of changes) {
      write(path, text);
      const stamp = stagingStamp(script, node);
      expect(seen.has(stamp as string), `changing ${path} must change the stamp`).toBe(false);
      seen.add(stamp as string);
    }
  });

  it("has no stamp without a built bundle or a Node (staging then always runs)", () => {
    const root = mkdtempSync(join(tmpdir(), "ossup-stamp-"));
    dirs.push(root);
    const { script } = fakeInstall(root);
    expect(stagingStamp(script, undefined)).toBeUndefined();
    rmSync(join(dirname(dirname(script)), "dist"), { recursive: true });
    expect(stagingStamp(script, join(root, "bin", "node"))).toBeUndefined();
  });
});
