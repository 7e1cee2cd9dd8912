import {
  type ArgumentTable,
  type CommandSpec,
  type GroupSpec,
  type OptionTable,
  readValues,
  type ValuesOf,
} from "./define-command.js";
import type { GLOBAL_OPTIONS, GlobalOptions } from "./global-options.js";

/** What a handler's `run` receives: its own values, typed from its spec, and the global options. */
export interface CommandInput<S extends CommandSpec> {
  options: ValuesOf<S["options"]>;
  args: ValuesOf<S["arguments"]>;
  globals: GlobalOptions;
  /** Everything after the first `--` on the command line (the command of `trailingCommand` specs). */
  trailing: string[];
  /** The whole command table (what `completion` generates its scripts from). */
  program: ProgramSpec;
}

/** A handler module (`<verb>-handler.ts`): its `run` returns the exit code. */
export interface HandlerModule<S extends CommandSpec> {
  run: (input: CommandInput<S>) => Promise<number>;
}

/** What the adapter hands a command when it runs: commander's raw values, read with run-time checks. */
interface RawValues {
  option(key: string): unknown;
  argument(index: number): unknown;
  global(key: string): unknown;
  trailing: string[];
  program: ProgramSpec;
}

/** A spec paired with its lazily loaded handler; the pairing is type-checked in `command()`. */
export interface CommandEntry {
  readonly kind: "command";
  readonly spec: CommandSpec<OptionTable, ArgumentTable>;
  run(raw: RawValues): Promise<number>;
}

export interface GroupEntry {
  readonly kind: "group";
  readonly group: GroupSpec;
  readonly commands: readonly CommandEntry[];
}

/** The root: its help, the global options, then groups and top-level commands in help order. */
export interface ProgramSpec {
  readonly name: string;
  readonly description: string;
  readonly helpAfter: string;
  readonly version: { readonly flags: string; readonly description: string };
  readonly globals: typeof GLOBAL_OPTIONS;
  readonly entries: readonly (GroupEntry | CommandEntry)[];
}

/**
 * Pairs a spec with its handler: `command(sandboxExecCommand, () => import("./commands/sandbox/exec-handler.js"))`.
 * The import runs only when the command does, so `openshell --version` loads no handler.
 */
export function command<S extends CommandSpec>(spec: S, load: () => Promise<HandlerModule<S>>): CommandEntry {
  return {
    kind: "command",
    spec,
    async run(raw) {
      const input: CommandInput<S> = {
        options: readValues(spec.options, (key) => raw.option(key)),
        args: readValues(spec.arguments, (_key, index) => raw.argument(index)),
        globals: readValues(raw.program.globals, (key) => raw.global(key)),
        trailing: raw.trailing,
        program: raw.program,
      };
      return (await load()).run(input);
    },
  };
}

export function group(spec: GroupSpec, commands: readonly CommandEntry[]): GroupEntry {
  return { kind: "group", group: spec, commands };
}
