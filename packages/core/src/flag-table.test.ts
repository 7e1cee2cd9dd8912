import { describe, expect, it } from "vitest";
import { OpenShellError } from "./errors.js";
import { type FlagTable, flagHelp, parseFlags } from "./flag-table.js";

const TABLE = {
  port: {
    type: "int",
    env: "X_PORT",
    default: 8080,
    min: 1,
    max: 65535,
    unit: "port",
    description: "API port",
  },
  name: { type: "string", env: "X_NAME", arg: "NAME", description: "a name" },
  verbose: { type: "boolean", env: "X_VERBOSE", short: "v", description: "say more" },
  level: {
    type: "enum",
    env: "X_LEVEL",
    default: "info",
    values: ["info", "debug"],
    description: "log level",
  },
  drivers: { type: "list", env: "X_DRIVERS", default: ["vm"], description: "drivers" },
  "retry-ms": {
    type: "int",
    env: "X_RETRY_MS",
    envOnly: true,
    default: 100,
    min: 0,
    description: "retry delay",
  },
} as const satisfies FlagTable;

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  parseFlags(TABLE, argv, env, { binary: "x", allowPositionals: true });

const errorOf = (run: () => unknown): OpenShellError => {
  try {
    run();
  } catch (error) {
    if (error instanceof OpenShellError) return error;
    throw error;
  }
  throw new Error("expected an OpenShellError");
};

describe("parseFlags", () => {
  it("takes the flag, else the env var, else the default", () => {
    expect(parse([]).values).toMatchObject({ port: 8080, name: undefined, verbose: false, level: "info" });
    expect(parse([]).sources).toMatchObject({ port: "default" });
    expect(parse([], { X_PORT: "9000", X_NAME: "env" }).values).toMatchObject({ port: 9000, name: "env" });
    expect(parse(["--port", "9001", "--name", "flag"], { X_PORT: "9000", X_NAME: "env" })).toMatchObject({
      values: { port: 9001, name: "flag" },
      sources: { port: "flag", name: "flag" },
    });
    // An empty env var counts as unset.
    expect(parse([], { X_PORT: "" }).values.port).toBe(8080);
  });

  it("converts each type", () => {
    const { values, positionals } = parse(
      ["-v", "--level", "debug", "--drivers", " vm, test ,", "--", "sleep", "1"],
      { X_RETRY_MS: "5" },
    );
    expect(values).toMatchObject({ verbose: true, level: "debug", drivers: ["vm", "test"], "retry-ms": 5 });
    expect(positionals).toEqual(["sleep", "1"]);
    expect(parse([], { X_VERBOSE: "yes" }).values.verbose).toBe(true);
    expect(parse([], { X_VERBOSE: "off" }).values.verbose).toBe(false);
  });

  it("env-only settings cannot be given as flags", () => {
    expect(errorOf(() => parse(["--retry-ms", "5"])).message).toContain("Unknown option '--retry-ms'");
  });

  it("names the flag and the env var in config_invalid errors", () => {
    const badEnum = errorOf(() => parse(["--level", "loud"]));
    expect(badEnum.code).toBe("config_invalid");
    expect(badEnum.message).toBe("--level 'loud' is not one of info, debug (--level or X_LEVEL)");
    expect(errorOf(() => parse([], { X_LEVEL: "loud" })).message).toBe(
      "X_LEVEL='loud' is not one of info, debug (--level or X_LEVEL)",
    );
    expect(errorOf(() => parse(["--port", "70000"])).message).toBe(
      "--port '70000' is not a valid port (1-65535) (--port or X_PORT)",
    );
    expect(errorOf(() => parse([], { X_RETRY_MS: "-1" })).message).toBe(
      "X_RETRY_MS='-1' is not a valid integer (at least 0)",
    );
    expect(errorOf(() => parse([], { X_VERBOSE: "maybe" })).message).toContain(
      "X_VERBOSE='maybe' is not a boolean",
    );
    const unknown = errorOf(() => parse(["--bogus"]));
    expect(unknown.code).toBe("config_invalid");
    expect(unknown.message).toMatch(/Unknown option '--bogus'.*Run 'x --help'/);
  });
});

describe("flagHelp", () => {
  it("lists every flag with its argument, default and env var, and env-only settings apart", () => {
    const help = flagHelp(TABLE, { usage: "x [options]", description: "Does x." });
    expect(help).toMatch(/^Usage: x \[options\]\n\nDoes x\.\n\nOptions:\n/);
    expect(help).toMatch(/ {2}--port N +API port \(default 8080\) \[X_PORT\]\n/);
    expect(help).toMatch(/ {2}-v, --verbose +say more \[X_VERBOSE\]\n/);
    expect(help).toMatch(/ {2}--level VALUE +log level \(info\|debug\) \(default info\) \[X_LEVEL\]\n/);
    expect(help).toMatch(/Environment:\n {2}X_RETRY_MS +retry delay \(default 100\)\n/);
    expect(help).not.toMatch(/--retry-ms/);
  });

  it("a flag added to a table is parsed and documented with no other edit", () => {
    const extended = {
      ...TABLE,
      "cache-dir": {
        type: "string",
        env: "X_CACHE_DIR",
        default: "/tmp/x",
        arg: "DIR",
        description: "cache",
      },
    } as const satisfies FlagTable;
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
      parseFlags(extended, argv, env, { binary: "x" }).values["cache-dir"];
    expect(run([])).toBe("/tmp/x");
    expect(run([], { X_CACHE_DIR: "/env" })).toBe("/env");
    expect(run(["--cache-dir", "/flag"], { X_CACHE_DIR: "/env" })).toBe("/flag");
    expect(flagHelp(extended, { usage: "x" })).toMatch(
      /--cache-dir DIR +cache \(default \/tmp\/x\) \[X_CACHE_DIR\]/,
    );
  });
});
