import { UsageError } from "./usage-error.js";

/**
 * What a command's value completes to in a shell. Declared by every option that takes a value and
 * every positional argument: completion never guesses from names.
 */
export type Completion = "none" | "files" | "sandboxes" | "gateways" | readonly string[];

/** How commander is told about an option (command-spec/commander-adapter.ts). */
type OptionParse =
  | { kind: "string"; defaultValue?: string }
  | { kind: "integer"; defaultValue?: number }
  | { kind: "flag" }
  | { kind: "negatable" }
  | { kind: "tristate"; negatedDescription: string }
  | { kind: "list" }
  | { kind: "choice"; choices: readonly string[] }
  | { kind: "count" };

/** One option: its flags as commander writes them, its help, its completion, how its value is checked. */
export interface OptionSpec<T> {
  /** e.g. "-n, --name <name>"; a tristate gives its positive form ("--tty"). */
  readonly flags: string;
  readonly description: string;
  /** Only meaningful for options that take a value; "none" for flags. */
  readonly complete: Completion;
  readonly parse: OptionParse;
  /** May be given more than once (-vv, -e A=1 -e B=2). */
  readonly repeatable: boolean;
  /** Checks commander's value at run time and gives it the option's type. */
  read(value: unknown): T;
}

type ArgumentShape = "required" | "optional" | "variadic";

/** One positional argument; its name in help and errors is its key in the spec's `arguments`. */
export interface ArgumentSpec<T> {
  readonly shape: ArgumentShape;
  readonly description: string;
  readonly complete: Completion;
  readonly defaultValue?: string;
  read(value: unknown): T;
}

// biome-ignore lint/suspicious/noExplicitAny: a table of options of any value type
export type OptionTable = Readonly<Record<string, OptionSpec<any>>>;
// biome-ignore lint/suspicious/noExplicitAny: a table of arguments of any value type
export type ArgumentTable = Readonly<Record<string, ArgumentSpec<any>>>;

/** The typed values a handler receives for a table of options or arguments. */
export type ValuesOf<T extends OptionTable | ArgumentTable> = {
  -readonly [K in keyof T]: ReturnType<T[K]["read"]>;
};

/**
 * A command: where it sits (`path`, e.g. "sandbox exec"), its help, its arguments (in order) and
 * options. The handler that runs it is paired with it in program.ts and loaded only when it runs.
 */
export interface CommandSpec<O extends OptionTable = OptionTable, A extends ArgumentTable = ArgumentTable> {
  /** Space-separated: "status", "sandbox exec". A two-word path needs its group in program.ts. */
  readonly path: string;
  readonly aliases?: readonly string[];
  readonly description: string;
  /** Replaces commander's generated usage line, e.g. "[options] [-- CMD...]". */
  readonly usage?: string;
  /** Printed after the options in `--help`. */
  readonly helpAfter?: string;
  /** In order on the command line; the keys are the names shown in help (`<name>`, `[dest]`). */
  readonly arguments: A;
  /** Keyed by commander's attribute name of the option (`--vm-vcpus` → `vmVcpus`, `--no-wait` → `wait`). */
  readonly options: O;
  /** Takes `-- CMD...`: what follows the first `--` is a command for the sandbox. */
  readonly trailingCommand?: boolean;
  /** Left out of help and completion. */
  readonly hidden?: boolean;
}

/** A subcommand group ("gateway", "sandbox", "forward"). */
export interface GroupSpec {
  readonly name: string;
  readonly aliases?: readonly string[];
  readonly description: string;
}

/**
 * Declares a command. `arguments` and `options` are always written out (`{}` when there are none),
 * so each spec shows everything the command takes; their types become the handler's input.
 */
export function defineCommand<const O extends OptionTable, const A extends ArgumentTable>(
  spec: CommandSpec<O, A>,
): CommandSpec<O, A> {
  return spec;
}

/**
 * Reads every entry of a table through its own `read` (a run-time check of commander's value):
 * `rawValue(key, position)` gives commander's value.
 */
export function readValues<T extends OptionTable | ArgumentTable>(
  table: T,
  rawValue: (key: string, position: number) => unknown,
): ValuesOf<T> {
  const values: Record<string, unknown> = {};
  Object.entries(table).forEach(([key, spec], position) => {
    values[key] = spec.read(rawValue(key, position));
  });
  if (!readsEvery(table, values)) throw new Error("a value of the table was not read");
  return values;
}

/** True when `values` holds a value, read by its spec, for every key of `table`. */
function readsEvery<T extends OptionTable | ArgumentTable>(table: T, values: object): values is ValuesOf<T> {
  return Object.keys(table).every((key) => Object.hasOwn(values, key));
}

// ---------------------------------------------------------------------------------------------
// Run-time checks of what commander hands over.

/** A value commander should never produce for the declared kind: a bug of the spec or the adapter. */
function fail(what: string, value: unknown): never {
  throw new Error(`${what}: unexpected value ${JSON.stringify(value)} from the parser`);
}

const optionalString = (value: unknown): string | undefined =>
  value === undefined || typeof value === "string" ? value : fail("expected a string", value);

const requiredString = (value: unknown): string =>
  typeof value === "string" ? value : fail("expected a string", value);

const stringList = (value: unknown): string[] => {
  if (value === undefined) return [];
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value;
  return fail("expected a list of strings", value);
};

const optionalNumber = (value: unknown): number | undefined =>
  value === undefined || typeof value === "number" ? value : fail("expected a number", value);

const requiredNumber = (value: unknown): number =>
  typeof value === "number" ? value : fail("expected a number", value);

const flagValue = (value: unknown): boolean =>
  value === undefined ? false : typeof value === "boolean" ? value : fail("expected a flag", value);

const negatableValue = (value: unknown): boolean =>
  value === undefined ? true : typeof value === "boolean" ? value : fail("expected a flag", value);

const tristateValue = (value: unknown): boolean | undefined =>
  value === undefined || typeof value === "boolean" ? value : fail("expected a flag", value);

/** `--limit 10`: the one integer rule of the CLI (bad input exits 2 with this sentence). */
export function parseNonNegativeInteger(text: string): number {
  const parsed = Number(text);
  if (!Number.isInteger(parsed) || parsed < 0)
    throw new UsageError(`'${text}' is not a non-negative integer`);
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Options.

interface ValueSettings {
  /** What the value completes to: required, so every option says it. */
  complete: Completion;
}

/** An option that takes one value: of type V when it has a default, else V or undefined. */
interface ValueOptionBuilder<V> {
  (flags: string, description: string, settings: ValueSettings & { default: V }): OptionSpec<V>;
  (flags: string, description: string, settings: ValueSettings): OptionSpec<V | undefined>;
}

/**
 * The builder of a one-value option kind: `parse` tells commander the kind and the default,
 * `optional` reads the value of an option without a default, `required` of one with a default.
 */
function valueOption<V>(
  parse: (defaultValue: V | undefined) => OptionParse,
  optional: (value: unknown) => V | undefined,
  required: (value: unknown) => V,
): ValueOptionBuilder<V> {
  function build(flags: string, description: string, settings: ValueSettings & { default: V }): OptionSpec<V>;
  function build(flags: string, description: string, settings: ValueSettings): OptionSpec<V | undefined>;
  function build(
    flags: string,
    description: string,
    settings: ValueSettings & { default?: V },
  ): OptionSpec<V | undefined> {
    const defaultValue = settings.default;
    return {
      flags,
      description,
      complete: settings.complete,
      repeatable: false,
      parse: parse(defaultValue),
      read: defaultValue === undefined ? optional : required,
    };
  }
  return build;
}

/** The option kinds. Each one's value type is what its `read` returns. */
export const option = {
  /** `--name <name>`: a string, or undefined (or the default) when not given. */
  string: valueOption<string>(
    (defaultValue) => ({ kind: "string", defaultValue }),
    optionalString,
    requiredString,
  ),
  /** `--port <port>`: a non-negative integer; anything else exits 2 ("'x' is not a non-negative integer"). */
  integer: valueOption<number>(
    (defaultValue) => ({ kind: "integer", defaultValue }),
    optionalNumber,
    requiredNumber,
  ),
  /** `--docker`: true when given. */
  flag(flags: string, description: string): OptionSpec<boolean> {
    return {
      flags,
      description,
      complete: "none",
      repeatable: false,
      parse: { kind: "flag" },
      read: flagValue,
    };
  },
  /** `--no-wait`: true unless given. The key is the positive name (`wait`). */
  negatable(flags: `--no-${string}`, description: string): OptionSpec<boolean> {
    return {
      flags,
      description,
      complete: "none",
      repeatable: false,
      parse: { kind: "negatable" },
      read: negatableValue,
    };
  },
  /** `--tty` / `--no-tty`: true, false, or undefined when neither is given (decide yourself). */
  tristate(
    flag: `--${string}`,
    description: string,
    negatedDescription: string,
  ): OptionSpec<boolean | undefined> {
    return {
      flags: flag,
      description,
      complete: "none",
      repeatable: false,
      parse: { kind: "tristate", negatedDescription },
      read: tristateValue,
    };
  },
  /** `-e, --env <KEY=VALUE>` given any number of times: every value in order ([] when none). */
  list(flags: string, description: string, settings: ValueSettings): OptionSpec<string[]> {
    return {
      flags,
      description,
      complete: settings.complete,
      repeatable: true,
      parse: { kind: "list" },
      read: stringList,
    };
  },
  /** `-o, --output <format>` with a fixed set of values (commander rejects others, exit 2). */
  choice<const W extends readonly string[]>(
    flags: string,
    description: string,
    choices: W,
  ): OptionSpec<W[number] | undefined> {
    const allowed = (value: unknown): value is W[number] => choices.some((choice) => choice === value);
    return {
      flags,
      description,
      complete: choices,
      repeatable: false,
      parse: { kind: "choice", choices },
      read: (value) =>
        value === undefined || allowed(value) ? value : fail(`expected one of ${choices}`, value),
    };
  },
  /** `-v, --verbose`: how many times it was given (-vv is 2). */
  count(flags: string, description: string): OptionSpec<number> {
    return {
      flags,
      description,
      complete: "none",
      repeatable: true,
      parse: { kind: "count" },
      read: requiredNumber,
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Positional arguments.

function optional(description: string, settings: ValueSettings & { default: string }): ArgumentSpec<string>;
function optional(description: string, settings: ValueSettings): ArgumentSpec<string | undefined>;
function optional(
  description: string,
  settings: ValueSettings & { default?: string },
): ArgumentSpec<string | undefined> {
  const defaultValue = settings.default;
  return defaultValue === undefined
    ? { shape: "optional", description, complete: settings.complete, read: optionalString }
    : { shape: "optional", description, complete: settings.complete, defaultValue, read: requiredString };
}

/** The argument kinds: `<name>`, `[name]` and `[names...]`. */
export const argument = {
  required(description: string, settings: ValueSettings): ArgumentSpec<string> {
    return { shape: "required", description, complete: settings.complete, read: requiredString };
  },
  optional,
  /** Zero or more, last: `[names...]` ([] when none). */
  variadic(description: string, settings: ValueSettings): ArgumentSpec<string[]> {
    return { shape: "variadic", description, complete: settings.complete, read: stringList };
  },
};
