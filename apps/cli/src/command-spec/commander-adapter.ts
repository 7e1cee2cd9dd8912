import { Argument, Command, Option } from "commander";
import {
  type ArgumentSpec,
  type CommandSpec,
  type OptionSpec,
  type OptionTable,
  parseNonNegativeInteger,
} from "./define-command.js";
import type { CommandEntry, ProgramSpec } from "./program-spec.js";

export interface ProgramHooks {
  /** Receives each command's exit code. */
  onExit(code: number): void;
  /** Everything after the first `--` (main.ts splits it off before commander sees the line). */
  trailing: string[];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const countUp = (_value: string, previous: number) => previous + 1;

/**
 * The commander tree of a program spec. Commander parses and prints help and usage errors; each
 * command's action reads its values through its spec (run-time checked) and runs its lazily
 * loaded handler.
 */
export function buildCommander(program: ProgramSpec, version: string, hooks: ProgramHooks): Command {
  const root = new Command(program.name)
    .description(program.description)
    .version(version, program.version.flags, program.version.description);
  addOptions(root, program.globals);
  // Set before the subcommands exist: commander copies these settings only into commands created later.
  root
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .showSuggestionAfterError(true)
    .addHelpText("after", program.helpAfter);

  const addCommand = (parent: Command, entry: CommandEntry, prefix: string) => {
    const { spec } = entry;
    const name = spec.path.slice(prefix.length);
    if (!spec.path.startsWith(prefix) || name === "" || name.includes(" "))
      throw new Error(`command '${spec.path}' is listed under '${prefix.trim() || "the root"}'`);
    const command = parent.command(name, { hidden: Boolean(spec.hidden) }).description(spec.description);
    if (spec.aliases) command.aliases(spec.aliases);
    if (spec.usage) command.usage(spec.usage);
    addArguments(command, spec);
    addOptions(command, spec.options);
    if (spec.helpAfter) command.addHelpText("after", spec.helpAfter);
    command.action(async function (this: Command) {
      const code = await entry.run({
        option: (key) => this.getOptionValue(key),
        argument: (index) => this.processedArgs[index],
        global: (key) => root.getOptionValue(key),
        trailing: hooks.trailing,
        program,
      });
      hooks.onExit(code);
    });
  };

  for (const entry of program.entries) {
    if (entry.kind === "command") {
      addCommand(root, entry, "");
      continue;
    }
    const parent = root.command(entry.group.name).description(entry.group.description);
    if (entry.group.aliases) parent.aliases(entry.group.aliases);
    for (const child of entry.commands) addCommand(parent, child, `${entry.group.name} `);
  }
  return root;
}

/** `<name>`, `[name]`, `[names...]`: the key is the name. */
function argumentUsage(name: string, spec: ArgumentSpec<unknown>): string {
  switch (spec.shape) {
    case "required":
      return `<${name}>`;
    case "optional":
      return `[${name}]`;
    case "variadic":
      return `[${name}...]`;
  }
}

function addArguments(command: Command, spec: CommandSpec): void {
  const entries = Object.entries(spec.arguments);
  entries.forEach(([name, argument], index) => {
    if (argument.shape === "variadic" && index !== entries.length - 1)
      throw new Error(`${spec.path}: only the last argument can be variadic ('${name}')`);
    const declared = new Argument(argumentUsage(name, argument), argument.description);
    if (argument.defaultValue !== undefined) declared.default(argument.defaultValue);
    command.addArgument(declared);
  });
}

function addOptions(command: Command, table: OptionTable): void {
  for (const [key, spec] of Object.entries(table)) {
    const options = commanderOptions(spec);
    for (const option of options) {
      if (option.attributeName() !== key)
        throw new Error(
          `option '${option.flags}' of '${command.name()}' is read as '${option.attributeName()}', but its key is '${key}'`,
        );
      command.addOption(option);
    }
  }
}

function commanderOptions(spec: OptionSpec<unknown>): Option[] {
  const option = new Option(spec.flags, spec.description);
  const { parse } = spec;
  switch (parse.kind) {
    case "string":
      if (parse.defaultValue !== undefined) option.default(parse.defaultValue);
      return [option];
    case "integer":
      option.argParser(parseNonNegativeInteger);
      if (parse.defaultValue !== undefined) option.default(parse.defaultValue);
      return [option];
    case "flag":
    case "negatable":
      return [option];
    case "tristate":
      // Declared positive first: then commander gives the negative no default (undefined = neither).
      return [option, new Option(spec.flags.replace(/^--/, "--no-"), parse.negatedDescription)];
    case "list":
      return [option.argParser(collect)];
    case "choice":
      return [option.choices(parse.choices)];
    case "count":
      return [option.argParser(countUp).default(0)];
  }
}
