import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import { buildCommander } from "./commander-adapter.js";
import { argument, defineCommand, option } from "./define-command.js";
import { GLOBAL_OPTIONS, type GlobalOptions } from "./global-options.js";
import { type CommandInput, command, group, type ProgramSpec } from "./program-spec.js";
import { runCommandLine } from "./run-command-line.js";

/** One command with every kind of option and argument. */
const probeCommand = defineCommand({
  path: "box probe",
  aliases: ["pr"],
  description: "a command of this test only",
  trailingCommand: true,
  arguments: {
    name: argument.required("a name", { complete: "sandboxes" }),
    dest: argument.optional("a place", { default: "/sandbox", complete: "none" }),
    rest: argument.variadic("more", { complete: "files" }),
  },
  options: {
    count: option.integer("-c, --count <n>", "how many", { complete: "none" }),
    limit: option.integer("--limit <n>", "at most", { default: 100, complete: "none" }),
    label: option.string("--label <text>", "a label", { complete: "none" }),
    driver: option.string("--driver <driver>", "a driver", { default: "vm", complete: ["vm"] }),
    docker: option.flag("--docker", "a flag"),
    wait: option.negatable("--no-wait", "do not wait"),
    tty: option.tristate("--tty", "a terminal", "no terminal"),
    env: option.list("-e, --env <KEY=VALUE>", "repeatable", { complete: "none" }),
    format: option.choice("--format <format>", "a choice", ["short", "long"]),
  },
});

/** What the probe's handler received, run by run. */
let received: CommandInput<typeof probeCommand>[] = [];
let stderr = "";

const program: ProgramSpec = {
  name: "openshell",
  description: "test program",
  helpAfter: "",
  version: { flags: "-V, --version", description: "print the version" },
  globals: GLOBAL_OPTIONS,
  entries: [
    group({ name: "box", aliases: ["bx"], description: "boxes" }, [
      command(probeCommand, async () => ({
        run: async (input) => {
          received.push(input);
          return input.options.count ?? 0;
        },
      })),
    ]),
  ],
};

const run = (...argv: string[]) =>
  runCommandLine(argv, (hooks) =>
    buildCommander(program, "1.2.3", hooks).configureOutput({
      writeErr: (text) => (stderr += text),
      writeOut: () => undefined,
    }),
  );

/** Runs the probe and returns what its handler got. */
async function probe(...argv: string[]): Promise<CommandInput<typeof probeCommand>> {
  const code = await run("box", "probe", ...argv);
  expect(stderr).toBe("");
  expect(received).toHaveLength(1);
  const [input] = received;
  if (!input) throw new Error("the handler did not run");
  expect(code).toBe(input.options.count ?? 0);
  return input;
}

beforeEach(() => {
  received = [];
  stderr = "";
  vi.spyOn(process.stderr, "write").mockImplementation((text) => {
    stderr += String(text);
    return true;
  });
  // Help and version text of subcommands go to stdout directly.
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
});
afterEach(() => vi.restoreAllMocks());

describe("values from a spec", () => {
  it("are typed from the spec", () => {
    type Input = CommandInput<typeof probeCommand>;
    expectTypeOf<Input["options"]>().toEqualTypeOf<{
      count: number | undefined;
      limit: number;
      label: string | undefined;
      driver: string;
      docker: boolean;
      wait: boolean;
      tty: boolean | undefined;
      env: string[];
      format: "short" | "long" | undefined;
    }>();
    expectTypeOf<Input["args"]>().toEqualTypeOf<{ name: string; dest: string; rest: string[] }>();
    expectTypeOf<Input["globals"]>().toEqualTypeOf<GlobalOptions>();
    expectTypeOf<GlobalOptions>().toEqualTypeOf<{
      gateway: string | undefined;
      gatewayEndpoint: string | undefined;
      output: "text" | "json" | undefined;
      verbose: number;
    }>();
  });

  it("pair only with a handler written for them (checked by tsc)", () => {
    const other = defineCommand({
      path: "other",
      description: "x",
      arguments: {},
      options: { depth: option.integer("--depth <n>", "x", { default: 1, complete: "none" }) },
    });
    const otherHandler = async () => ({
      run: async (input: CommandInput<typeof other>) => input.options.depth,
    });
    expect(command(other, otherHandler).spec).toBe(other);
    // @ts-expect-error: the probe's input has no `depth` option
    expect(command(probeCommand, otherHandler).spec).toBe(probeCommand);
  });

  it("have their defaults when nothing is given", async () => {
    const input = await probe("box1");
    expect(input.options).toEqual({
      count: undefined,
      limit: 100,
      label: undefined,
      driver: "vm",
      docker: false,
      wait: true,
      tty: undefined,
      env: [],
      format: undefined,
    });
    expect(input.args).toEqual({ name: "box1", dest: "/sandbox", rest: [] });
    expect(input.globals).toEqual({
      gateway: undefined,
      gatewayEndpoint: undefined,
      output: undefined,
      verbose: 0,
    });
    expect(input.trailing).toEqual([]);
    expect(input.program).toBe(program);
  });

  it("are read from the command line, options before or after the arguments", async () => {
    const input = await probe(
      "-c",
      "7",
      "box1",
      "--limit=3",
      "--label",
      "hi",
      "--docker",
      "--no-wait",
      "--tty",
      "-e",
      "A=1",
      "--env",
      "B=2",
      "--format",
      "long",
      "/dest",
      "x",
      "y",
      "--",
      "echo",
      "--docker",
    );
    expect(input.options).toEqual({
      count: 7,
      limit: 3,
      label: "hi",
      driver: "vm",
      docker: true,
      wait: false,
      tty: true,
      env: ["A=1", "B=2"],
      format: "long",
    });
    expect(input.args).toEqual({ name: "box1", dest: "/dest", rest: ["x", "y"] });
    // Everything after the first `--` is the sandbox's, options included.
    expect(input.trailing).toEqual(["echo", "--docker"]);
  });

  it("tristate: --no-tty is false, the last one given wins", async () => {
    expect((await probe("b", "--no-tty")).options.tty).toBe(false);
    received = [];
    expect((await probe("b", "--no-tty", "--tty")).options.tty).toBe(true);
  });

  it("global options anywhere on the line, -v counted, through aliases", async () => {
    const code = await run(
      "-g",
      "lab",
      "bx",
      "pr",
      "b",
      "-vv",
      "-o",
      "json",
      "--gateway-endpoint",
      "http://x:1",
    );
    expect(code).toBe(0);
    expect(received[0]?.globals).toEqual({
      gateway: "lab",
      gatewayEndpoint: "http://x:1",
      output: "json",
      verbose: 2,
    });
  });
});

describe("bad usage exits 2", () => {
  it.each([["abc"], ["-1"], ["1.5"], ["7x"]])("an integer option given '%s'", async (value) => {
    expect(await run("box", "probe", "b", "--count", value)).toBe(2);
    expect(stderr).toBe(`✗ '${value}' is not a non-negative integer\n`);
    expect(received).toEqual([]);
  });

  it("a required argument missing", async () => {
    expect(await run("box", "probe")).toBe(2);
    expect(stderr).toContain("error: missing required argument 'name'");
    expect(received).toEqual([]);
  });

  it("a value outside the choices, an unknown option, an unknown command", async () => {
    expect(await run("box", "probe", "b", "--format", "wide")).toBe(2);
    expect(stderr).toContain("argument 'wide' is invalid. Allowed choices are short, long.");
    expect(await run("-o", "yaml", "box", "probe", "b")).toBe(2);
    expect(await run("box", "probe", "b", "--frobnicate")).toBe(2);
    expect(stderr).toContain("unknown option '--frobnicate'");
    expect(await run("box", "prbe")).toBe(2);
    expect(received).toEqual([]);
  });

  it("but --help and --version exit 0", async () => {
    expect(await run("--version")).toBe(0);
    expect(await run("box", "probe", "--help")).toBe(0);
  });
});

describe("a spec that does not fit its place is refused when the program is built", () => {
  const hooks = { trailing: [], onExit: () => undefined };
  const build = (entries: ProgramSpec["entries"]) => () =>
    buildCommander({ ...program, entries }, "1", hooks);
  const load = async () => ({ run: async () => 0 });

  it("an option whose key is not what commander reads", () => {
    const wrongKey = defineCommand({
      path: "wrong",
      description: "x",
      arguments: {},
      options: { vmCpus: option.integer("--vm-vcpus <n>", "x", { complete: "none" }) },
    });
    expect(build([command(wrongKey, load)])).toThrow("is read as 'vmVcpus', but its key is 'vmCpus'");
  });

  it("a command listed under another group", () => {
    const elsewhere = defineCommand({ path: "sandbox list", description: "x", arguments: {}, options: {} });
    expect(build([group({ name: "gateway", description: "x" }, [command(elsewhere, load)])])).toThrow(
      "command 'sandbox list' is listed under 'gateway'",
    );
  });

  it("a variadic argument that is not the last", () => {
    const early = defineCommand({
      path: "early",
      description: "x",
      arguments: {
        names: argument.variadic("x", { complete: "none" }),
        last: argument.required("x", { complete: "none" }),
      },
      options: {},
    });
    expect(build([command(early, load)])).toThrow("only the last argument can be variadic");
  });
});
