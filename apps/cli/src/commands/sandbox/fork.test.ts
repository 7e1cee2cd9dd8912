import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildCommander } from "../../command-spec/commander-adapter.js";
import { type CommandInput, command, group } from "../../command-spec/program-spec.js";
import { runCommandLine } from "../../command-spec/run-command-line.js";
import { PROGRAM } from "../../program.js";
import { sandboxForkCommand } from "./fork.js";

/** What the handler received, run by run (the real spec, a recording handler). */
let received: CommandInput<typeof sandboxForkCommand>[] = [];
let stdout = "";
let stderr = "";

const forkOnly = {
  ...PROGRAM,
  entries: [
    group({ name: "sandbox", aliases: ["sb"], description: "sandboxes" }, [
      command(sandboxForkCommand, async () => ({
        run: async (input) => {
          received.push(input);
          return 0;
        },
      })),
    ]),
  ],
};

const run = (program: typeof PROGRAM, ...argv: string[]) =>
  runCommandLine(argv, (hooks) =>
    buildCommander(program, "1.2.3", hooks).configureOutput({
      writeErr: (text) => (stderr += text),
      writeOut: (text) => (stdout += text),
    }),
  );

beforeEach(() => {
  received = [];
  stdout = "";
  stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation((text) => {
    stdout += String(text);
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((text) => {
    stderr += String(text);
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

describe("openshell sandbox fork", () => {
  it("takes the source NAME, --name for the copy and --no-wait", async () => {
    expect(await run(forkOnly, "sandbox", "fork", "src", "--name", "copy", "--no-wait")).toBe(0);
    expect(await run(forkOnly, "sb", "fork", "src")).toBe(0);
    expect(received.map(({ args, options }) => ({ args, options }))).toEqual([
      { args: { name: "src" }, options: { name: "copy", wait: false } },
      { args: { name: "src" }, options: { name: undefined, wait: true } },
    ]);
  });

  it("without NAME is bad usage (exit 2) and runs nothing", async () => {
    expect(await run(forkOnly, "sandbox", "fork")).toBe(2);
    expect(stderr).toContain("missing required argument 'name'");
    expect(received).toEqual([]);
  });

  it("--help (of the real program) says what it does, its options and that it needs the VM driver", async () => {
    expect(await run(PROGRAM, "sandbox", "fork", "--help")).toBe(0);
    expect(stdout).toContain("Usage: openshell sandbox fork [options] <name>");
    expect(stdout).toContain("copy a ready sandbox (disk and memory) into a new one");
    expect(stdout).toContain("--name <new-name>");
    expect(stdout).toContain("--no-wait");
    expect(stdout).toContain("Needs the VM driver");
    expect(stdout).toContain("openshell gateway start --driver vm");
    expect(received).toEqual([]);
  });

  it("is listed under `openshell sandbox`", async () => {
    expect(await run(PROGRAM, "sandbox", "--help")).toBe(0);
    expect(stdout).toMatch(/fork \[options\] <name>\s+copy a ready sandbox/);
  });
});
