import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConsoleSilenceWatch } from "./console-silence-watch.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("ConsoleSilenceWatch", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const consoleFile = () => {
    const dir = mkdtempSync(join(tmpdir(), "silence-"));
    dirs.push(dir);
    const file = join(dir, "console.log");
    writeFileSync(file, "[    0.5] kernel line\n");
    return file;
  };

  it("fires once after the console stopped growing for the window", async () => {
    const file = consoleFile();
    let fired = 0;
    const watch = new ConsoleSilenceWatch(file, 300, () => fired++);
    watch.start(50);
    await sleep(600);
    watch.stop();
    expect(fired).toBe(1);
  });

  it("does not fire while the guest keeps printing, and stop() ends it", async () => {
    const file = consoleFile();
    let fired = 0;
    const watch = new ConsoleSilenceWatch(file, 300, () => fired++);
    watch.start(50);
    for (let i = 0; i < 8; i++) {
      await sleep(100);
      appendFileSync(file, `OPENSHELL-VM-INIT step ${i}\n`);
    }
    expect(fired).toBe(0);
    watch.stop();
    await sleep(500);
    expect(fired).toBe(0);
  });
});
