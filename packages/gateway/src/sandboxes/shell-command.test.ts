import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { buildExecCommand, shellEscape } from "./shell-command.js";

describe("shellEscape", () => {
  it("leaves safe words bare and quotes everything else", () => {
    expect(shellEscape("ls")).toBe("ls");
    expect(shellEscape("/a/b-c_d.e")).toBe("/a/b-c_d.e");
    expect(shellEscape("")).toBe("''");
    expect(shellEscape("a b")).toBe("'a b'");
    expect(shellEscape("it's")).toBe(`'it'\\''s'`);
  });

  it("round-trips hostile strings through a real shell", () => {
    const hostile = ["$(id)", "`id`", "a'b\"c", "; rm -rf /", "*", "$HOME", "\\", "é ü", "-n"];
    const line = buildExecCommand({ command: ["printf", "%s\\n", ...hostile], workdir: "", environment: {} });
    const out = execFileSync("/bin/sh", ["-c", line], { encoding: "utf8" });
    expect(out).toBe(`${hostile.join("\n")}\n`);
  });
});

describe("buildExecCommand", () => {
  it("sorts env prefixes and prepends cd", () => {
    const line = buildExecCommand({
      command: ["env"],
      workdir: "/sandbox/my dir",
      environment: { ZED: "1", ALPHA: "x y" },
    });
    expect(line).toBe("cd '/sandbox/my dir' && ALPHA='x y' ZED=1 env");
  });

  it("rejects bad input with messages that say what is wrong", () => {
    const base = { workdir: "", environment: {} };
    expect(() => buildExecCommand({ ...base, command: [] })).toThrow("command is required");
    expect(() => buildExecCommand({ ...base, command: ["a\nb"] })).toThrow("NUL, CR or LF");
    expect(() => buildExecCommand({ ...base, command: ["x"], environment: { "1A": "x" } })).toThrow(
      "environment key '1A' is invalid",
    );
    expect(() => buildExecCommand({ ...base, command: ["x".repeat(33 * 1024)] })).toThrow("exceeds");
    expect(() => buildExecCommand({ ...base, command: new Array(1025).fill("a") })).toThrow("too many");
    expect(() => buildExecCommand({ command: ["x"], workdir: "a\0", environment: {} })).toThrow("workdir");
  });
});
