import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  awaitIdentity,
  parseEnvironmentLines,
  replaceProcessEnvironment,
  waitingMarker,
} from "./identity-wait.js";

describe("parseEnvironmentLines", () => {
  it("keeps KEY=VALUE lines verbatim (split at the first '=') and drops anything else", () => {
    expect(
      parseEnvironmentLines(
        "A=1\nB=x=y\n\n# note\n=nokey\n1BAD=2\nBAD-NAME=3\nNOEQUALS\nC=\nD= spaced $HOME\n",
      ),
    ).toEqual({ A: "1", B: "x=y", C: "", D: " spaced $HOME" });
  });
});

describe("awaitIdentity", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("says it waits, ignores SIGUSR2 until the file exists, then reads and removes it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "osid-"));
    dirs.push(dir);
    const file = join(dir, "identity");
    const identity = awaitIdentity(file);
    expect(readFileSync(waitingMarker(file), "utf8")).toBe(`${process.pid}\n`);
    let settled = false;
    void identity.then(() => {
      settled = true;
    });
    process.kill(process.pid, "SIGUSR2"); // no file yet: still waiting (and not killed)
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(settled).toBe(false);
    writeFileSync(file, "OPENSHELL_SANDBOX_ID=abc\nPATH=/usr/bin\n");
    process.kill(process.pid, "SIGUSR2");
    expect(await identity).toEqual({ OPENSHELL_SANDBOX_ID: "abc", PATH: "/usr/bin" });
    expect(existsSync(file)).toBe(false);
    expect(process.listenerCount("SIGUSR2")).toBe(0);
  });
});

describe("replaceProcessEnvironment", () => {
  it("leaves exactly the given variables", () => {
    const saved = { ...process.env };
    try {
      replaceProcessEnvironment({ ONLY: "this" });
      expect({ ...process.env }).toEqual({ ONLY: "this" });
    } finally {
      replaceProcessEnvironment(saved as Record<string, string>);
    }
  });
});
