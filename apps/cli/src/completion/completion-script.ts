import type {
  ArgumentSpec,
  Completion,
  OptionSpec as DeclaredOption,
  OptionTable,
} from "../command-spec/define-command.js";
import type { CommandEntry, ProgramSpec } from "../command-spec/program-spec.js";

export type Shell = "bash" | "zsh" | "fish";

/**
 * A static completion script for `shell`, generated from the command specs: subcommands (hidden
 * ones left out), options (the global options at every level), and for option values and
 * positional arguments what each spec declares they complete to. Sandbox and gateway names are
 * the dynamic part: they come from `openshell sandbox list --names` / `openshell gateway list --names`.
 */
export function completionScript(program: ProgramSpec, shell: Shell): string {
  const model = describeProgram(program);
  switch (shell) {
    case "bash":
      return bashScript(model);
    case "zsh":
      return zshScript(model);
    case "fish":
      return fishScript(model);
  }
}

// ---------------------------------------------------------------------------------------------
// The specs, reduced to what completion needs.

type ValueCompletion =
  | { kind: "none" }
  | { kind: "files" }
  | { kind: "sandboxes" }
  | { kind: "gateways" }
  | { kind: "words"; words: readonly string[] };

interface OptionSpec {
  short?: string;
  long?: string;
  description: string;
  /** Present when the option takes a value. */
  value?: { name: string; completion: ValueCompletion };
  /** May be given more than once (-vv, -e A=1 -e B=2). */
  repeatable: boolean;
}

interface ArgumentModel {
  name: string;
  description: string;
  variadic: boolean;
  completion: ValueCompletion;
}

interface CommandModel {
  /** Canonical names from the root, space-separated: "" for the root, "sandbox create". */
  path: string;
  name: string;
  aliases: readonly string[];
  description: string;
  /** Its own options, --help included; the globals are in ProgramModel. */
  options: OptionSpec[];
  arguments: ArgumentModel[];
  children: CommandModel[];
  /** Takes `-- CMD...`: what follows `--` is a command for the sandbox. */
  trailingCommand: boolean;
}

interface ProgramModel {
  root: CommandModel;
  /** The options that apply at every level (not --help, not --version). */
  globals: OptionSpec[];
}

/** commander's help option, on every command. */
const HELP: OptionSpec = {
  short: "-h",
  long: "--help",
  description: "display help for command",
  repeatable: false,
};

function describeProgram(program: ProgramSpec): ProgramModel {
  const version = {
    ...splitFlags(program.version.flags),
    description: program.version.description,
    repeatable: false,
  };
  const children = program.entries.flatMap((entry): CommandModel[] => {
    if (entry.kind === "command") return entry.spec.hidden ? [] : [describeCommand(entry, entry.spec.path)];
    const visible = entry.commands.filter((child) => !child.spec.hidden);
    return [
      {
        path: entry.group.name,
        name: entry.group.name,
        aliases: entry.group.aliases ?? [],
        description: entry.group.description,
        options: [HELP],
        arguments: [],
        children: visible.map((child) => describeCommand(child, child.spec.path)),
        trailingCommand: false,
      },
    ];
  });
  return {
    root: {
      path: "",
      name: program.name,
      aliases: [],
      description: program.description,
      options: [version, HELP],
      arguments: [],
      children,
      trailingCommand: false,
    },
    globals: describeOptions(program.globals),
  };
}

function describeCommand({ spec }: CommandEntry, path: string): CommandModel {
  return {
    path,
    name: path.slice(path.lastIndexOf(" ") + 1),
    aliases: spec.aliases ?? [],
    description: spec.description,
    options: [...describeOptions(spec.options), HELP],
    arguments: Object.entries(spec.arguments).map(([name, argument]: [string, ArgumentSpec<unknown>]) => ({
      name,
      description: argument.description,
      variadic: argument.shape === "variadic",
      completion: valueCompletion(argument.complete),
    })),
    children: [],
    trailingCommand: spec.trailingCommand ?? false,
  };
}

function describeOptions(table: OptionTable): OptionSpec[] {
  return Object.values(table).flatMap((option: DeclaredOption<unknown>) => {
    const { valueName, ...flags } = splitFlags(option.flags);
    const described: OptionSpec = {
      ...flags,
      description: option.description,
      repeatable: option.repeatable,
    };
    if (valueName !== undefined)
      described.value = { name: valueName, completion: valueCompletion(option.complete) };
    if (option.parse.kind !== "tristate") return [described];
    // --tty / --no-tty: one spec, two flags.
    const negated = {
      long: `--no-${(flags.long ?? "").slice(2)}`,
      description: option.parse.negatedDescription,
      repeatable: false,
    };
    return [described, negated];
  });
}

/** "-n, --name <name>" → -n, --name and the value's name (what commander prints in help). */
function splitFlags(flags: string): { short?: string; long?: string; valueName?: string } {
  const split: { short?: string; long?: string; valueName?: string } = {};
  for (const part of flags.split(/[ ,|]+/)) {
    if (part.startsWith("--")) split.long = part;
    else if (part.startsWith("-")) split.short = part;
    else if (/^[<[].*[>\]]$/.test(part)) split.valueName = part.slice(1, -1);
  }
  return split;
}

function valueCompletion(completion: Completion): ValueCompletion {
  if (typeof completion !== "string") return { kind: "words", words: completion };
  return { kind: completion };
}

function allCommands(command: CommandModel): CommandModel[] {
  return [command, ...command.children.flatMap(allCommands)];
}

const flagsOf = (option: OptionSpec) => [option.short, option.long].filter((flag) => flag !== undefined);

/** A single-quoted word for bash and zsh. */
const sh = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

/** A single-quoted word for fish. */
const fish = (text: string) => `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;

const QUIET_LIST = "openshell sandbox list --names 2>/dev/null </dev/null";
const QUIET_GATEWAYS = "openshell gateway list --names 2>/dev/null </dev/null";

// ---------------------------------------------------------------------------------------------
// bash

function bashScript({ root, globals }: ProgramModel): string {
  const commands = allCommands(root);
  const branch = (patterns: string[], action: string) => `    ${patterns.join(" | ")}) ${action} ;;`;
  const at = (path: string, word: string) => sh(`${path}/${word}`);
  const anywhere = (word: string) => `*${sh(`/${word}`)}`;
  const valueAction = (completion: ValueCompletion) => {
    switch (completion.kind) {
      case "words":
        return `__openshell_words ${sh(completion.words.join(" "))}`;
      case "files":
        return "__openshell_files";
      case "sandboxes":
        return "__openshell_sandbox_names";
      case "gateways":
        return "__openshell_gateway_names";
      case "none":
        return ":";
    }
  };

  const children = commands.flatMap((command) =>
    command.children.map((child) =>
      branch(
        [child.name, ...child.aliases].map((name) => at(command.path, name)),
        `REPLY=${sh(child.path)}`,
      ),
    ),
  );
  const valued = [
    ...commands.flatMap((command) =>
      command.options.filter((o) => o.value).flatMap((o) => flagsOf(o).map((f) => at(command.path, f))),
    ),
    ...globals.filter((o) => o.value).flatMap((o) => flagsOf(o).map(anywhere)),
  ];
  const subcommands = commands
    .filter((command) => command.children.length > 0)
    .map((command) =>
      branch(
        [sh(command.path)],
        `REPLY=${sh(command.children.map((c) => c.name).join(" "))} aliases=${sh(command.children.flatMap((c) => c.aliases).join(" "))}`,
      ),
    );
  const optionWords = commands.map((command) =>
    branch([sh(command.path)], `REPLY=${sh(command.options.flatMap(flagsOf).join(" "))}`),
  );
  const values = [
    ...commands.flatMap((command) =>
      command.options.flatMap((o) =>
        o.value && o.value.completion.kind !== "none"
          ? [
              branch(
                flagsOf(o).map((f) => at(command.path, f)),
                valueAction(o.value.completion),
              ),
            ]
          : [],
      ),
    ),
    ...globals.flatMap((o) =>
      o.value && o.value.completion.kind !== "none"
        ? [branch(flagsOf(o).map(anywhere), valueAction(o.value.completion))]
        : [],
    ),
  ];
  const positionals = commands.flatMap((command) =>
    command.arguments.map((argument, index) =>
      branch(
        [argument.variadic ? `${sh(`${command.path}/`)}*` : at(command.path, String(index))],
        valueAction(argument.completion),
      ),
    ),
  );

  return `# bash completion for openshell. Generated by \`openshell completion bash\`; install with
#   openshell completion bash > /etc/bash_completion.d/openshell
# or add to ~/.bashrc:  source <(openshell completion bash)

# Sandbox names from the active gateway; nothing (quickly) when it is not reachable.
__openshell_sandboxes() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 3 ${QUIET_LIST}
  else
    ${QUIET_LIST}
  fi
}

# Adds the words of $1 that start with $cur.
__openshell_words() {
  local -a words
  local word
  read -r -a words <<<"$1"
  for word in "\${words[@]}"; do
    [[ $word == "$cur"* ]] && COMPREPLY+=("$word")
  done
  return 0
}

__openshell_sandbox_names() {
  local name
  while IFS= read -r name; do
    [[ -n $name && $name == "$cur"* ]] && COMPREPLY+=("$name")
  done < <(__openshell_sandboxes)
  return 0
}

# Gateway names this CLI knows (no network).
__openshell_gateway_names() {
  local name
  while IFS= read -r name; do
    [[ -n $name && $name == "$cur"* ]] && COMPREPLY+=("$name")
  done < <(${QUIET_GATEWAYS})
  return 0
}

__openshell_files() {
  compopt -o filenames 2>/dev/null
  local file
  while IFS= read -r file; do
    COMPREPLY+=("$file")
  done < <(compgen -f -- "$cur")
  return 0
}

# REPLY: the path of subcommand $2 (a name or an alias) of the command at path $1.
__openshell_child() {
  case "$1/$2" in
${children.join("\n")}
    *) return 1 ;;
  esac
}

# Succeeds when option $2 of the command at path $1 takes a value.
__openshell_valued() {
  case "$1/$2" in
${valued.length ? `${branch(valued, "return 0")}\n` : ""}    *) return 1 ;;
  esac
}

# REPLY: subcommand names of the command at path $1, aliases: their aliases; fails for a leaf.
__openshell_commands() {
  case "$1" in
${subcommands.join("\n")}
    *) return 1 ;;
  esac
}

# REPLY: the options of the command at path $1.
__openshell_options() {
  case "$1" in
${optionWords.join("\n")}
  esac
  REPLY+=" ${globals.flatMap(flagsOf).join(" ")}"
}

# Completes the value of option $2 of the command at path $1.
__openshell_value() {
  case "$1/$2" in
${values.join("\n")}
  esac
  return 0
}

# Completes positional argument number $2 (from 0) of the command at path $1.
__openshell_argument() {
  case "$1/$2" in
${positionals.join("\n")}
  esac
  return 0
}

_openshell() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" npos=0 valopt="" word i REPLY="" aliases=""
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    if [[ -n $valopt ]]; then
      # --opt=value: COMP_WORDBREAKS makes "=" a word of its own.
      [[ $word == "=" ]] || valopt=""
      continue
    fi
    case $word in
      --)
        # What follows is a command to run in the sandbox.
        compopt -o bashdefault -o default 2>/dev/null
        return 0
        ;;
      --*=*) ;;
      -*) __openshell_valued "$path" "$word" && valopt=$word ;;
      *)
        if [[ $npos -eq 0 ]] && __openshell_child "$path" "$word"; then
          path=$REPLY
        else
          npos=$((npos + 1))
        fi
        ;;
    esac
  done

  if [[ -n $valopt ]]; then
    [[ $cur == "=" ]] && cur=""
    __openshell_value "$path" "$valopt"
  elif [[ $cur == -* ]]; then
    __openshell_options "$path"
    __openshell_words "$REPLY"
  elif __openshell_commands "$path"; then
    if [[ $npos -eq 0 ]]; then
      __openshell_words "$REPLY"
      # Aliases (sb, ls, rm) only when no full name matches.
      [[ \${#COMPREPLY[@]} -gt 0 ]] || __openshell_words "$aliases"
    fi
  else
    __openshell_argument "$path" "$npos"
  fi
  return 0
}

complete -F _openshell openshell
`;
}

// ---------------------------------------------------------------------------------------------
// zsh

const zshFunction = (path: string) =>
  path ? `_openshell_${path.replace(/[^A-Za-z0-9]+/g, "_")}` : "_openshell";

/** Escapes text for the [explanation] part of an _arguments spec. */
const zshExplanation = (text: string) => text.replace(/[\\[\]]/g, "\\$&");

/** Escapes text for a :message: part of an _arguments spec. */
const zshMessage = (text: string) => text.replace(/[\\:]/g, "\\$&");

function zshAction(completion: ValueCompletion): string {
  switch (completion.kind) {
    case "words":
      return `(${completion.words.join(" ")})`;
    case "files":
      return "_files";
    case "sandboxes":
      return "__openshell_sandbox_names";
    case "gateways":
      return "__openshell_gateway_names";
    case "none":
      return "";
  }
}

function zshOptionSpecs(option: OptionSpec): string[] {
  const flags = flagsOf(option);
  const exclusion = option.repeatable ? "*" : flags.length > 1 ? `(${flags.join(" ")})` : "";
  const value = option.value;
  return flags.map((flag) => {
    // -g+: value in the same word or the next; --name=: after "=" or in the next word.
    const suffix = value ? (flag.startsWith("--") ? "=" : "+") : "";
    const argument = value
      ? `:${zshMessage(value.name.replace(/[^\w=.-]+/g, " ").trim())}:${zshAction(value.completion)}`
      : "";
    return sh(`${exclusion}${flag}${suffix}[${zshExplanation(option.description)}]${argument}`);
  });
}

function zshCommand(command: CommandModel, globals: OptionSpec[]): string {
  const fn = zshFunction(command.path);
  const options = [...command.options, ...globals].flatMap(zshOptionSpecs);
  const lines = (specs: string[]) => specs.map((spec) => `    ${spec}`).join(" \\\n");
  if (command.children.length === 0) {
    const positionals = command.arguments.map((argument, index) =>
      sh(
        `${argument.variadic ? "*" : index + 1}:${zshMessage(argument.description || argument.name)}:${zshAction(argument.completion)}`,
      ),
    );
    if (command.trailingCommand) positionals.push(sh("*::command to run in the sandbox:_normal"));
    return `${fn}() {
  _arguments -s -S \\
${lines([...options, ...positionals])}
}`;
  }
  const label = command.path ? `openshell ${command.path} command` : "openshell command";
  return `${fn}() {
  local curcontext="$curcontext" state state_descr line ret=1
  typeset -A opt_args
  _arguments -C -s -S \\
${lines([...options, sh("1: :->command"), sh("*:: :->argument")])} && ret=0
  case $state in
    command)
      local -a commands
      commands=(
${command.children.map((child) => `        ${sh(`${child.name.replaceAll(":", "\\:")}:${child.description}`)}`).join("\n")}
      )
      _describe -t commands ${sh(label)} commands && ret=0
      ;;
    argument)
      curcontext="\${curcontext%:*:*}:openshell-\${words[1]}:"
      case $words[1] in
${command.children.map((child) => `        ${[child.name, ...child.aliases].map(sh).join("|")}) ${zshFunction(child.path)} && ret=0 ;;`).join("\n")}
      esac
      ;;
  esac
  return ret
}`;
}

function zshScript({ root, globals }: ProgramModel): string {
  return `#compdef openshell
# zsh completion for openshell. Generated by \`openshell completion zsh\`; install with
#   openshell completion zsh > "\${fpath[1]}/_openshell"
# or, after compinit in ~/.zshrc:  source <(openshell completion zsh)

# Sandbox names from the active gateway; nothing (quickly) when it is not reachable.
__openshell_sandbox_names() {
  local -a names limit
  local expl
  (( $+commands[timeout] )) && limit=(timeout 3)
  names=(\${(f)"$($limit ${QUIET_LIST})"})
  names=(\${names:#})
  _wanted sandboxes expl 'sandbox' compadd -a names
}

# Gateway names this CLI knows (no network).
__openshell_gateway_names() {
  local -a names
  local expl
  names=(\${(f)"$(${QUIET_GATEWAYS})"})
  names=(\${names:#})
  _wanted gateways expl 'gateway' compadd -a names
}

${allCommands(root)
  .map((command) => zshCommand(command, globals))
  .join("\n\n")}

if [ "$funcstack[1]" = "_openshell" ]; then
  _openshell "$@"
else
  compdef _openshell openshell
fi
`;
}

// ---------------------------------------------------------------------------------------------
// fish

function fishScript({ root, globals }: ProgramModel): string {
  const commands = allCommands(root);
  const complete = (condition: string, rest: string) => `complete -c openshell -n ${condition} ${rest}`;
  /** Condition: at command `path`, with between min and max (or more) positional arguments typed. */
  const at = (path: string, min?: number, max?: number) =>
    `"__openshell_at ${[fish(path), min, max].filter((part) => part !== undefined).join(" ")}"`;
  const optionRule = (option: OptionSpec) => {
    const parts: string[] = [];
    if (option.short) parts.push(`-s ${option.short.slice(1)}`);
    if (option.long) parts.push(`-l ${option.long.slice(2)}`);
    const completion = option.value?.completion;
    if (completion?.kind === "files") parts.push("-r -F");
    else if (completion?.kind === "words") parts.push(`-x -a ${fish(completion.words.join(" "))}`);
    else if (completion?.kind === "sandboxes") parts.push("-x -a '(__openshell_sandbox_names)'");
    else if (completion?.kind === "gateways") parts.push("-x -a '(__openshell_gateway_names)'");
    else if (completion) parts.push("-x");
    parts.push(`-d ${fish(option.description)}`);
    return parts.join(" ");
  };
  const argumentRule = (completion: ValueCompletion) => {
    switch (completion.kind) {
      case "words":
        return `-f -a ${fish(completion.words.join(" "))}`;
      case "files":
        return "-F";
      case "sandboxes":
        return "-f -a '(__openshell_sandbox_names)'";
      case "gateways":
        return "-f -a '(__openshell_gateway_names)'";
      case "none":
        return "-f";
    }
  };

  const children = commands.flatMap((command) =>
    command.children.map(
      (child) =>
        `        case ${[child.name, ...child.aliases].map((name) => fish(`${command.path}/${name}`)).join(" ")}\n            echo ${fish(child.path)}`,
    ),
  );
  const valued = [
    ...commands.flatMap((command) =>
      command.options
        .filter((o) => o.value)
        .flatMap((o) => flagsOf(o).map((f) => fish(`${command.path}/${f}`))),
    ),
    ...globals.filter((o) => o.value).flatMap((o) => flagsOf(o).map((f) => fish(`*/${f}`))),
  ];

  const rules: string[] = [
    "# Options of every command",
    ...globals.map((option) => complete(at("*"), optionRule(option))),
  ];
  for (const command of commands) {
    rules.push("", `# openshell${command.path ? ` ${command.path}` : ""}`);
    if (command.children.length > 0) {
      for (const child of command.children)
        rules.push(
          complete(at(command.path, 0, 0), `-f -a ${fish(child.name)} -d ${fish(child.description)}`),
        );
    } else {
      rules.push(complete(at(command.path), "-f"));
      command.arguments.forEach((argument, index) => {
        if (argument.completion.kind === "none") return;
        const where = argument.variadic ? at(command.path, index) : at(command.path, index, index);
        rules.push(complete(where, argumentRule(argument.completion)));
      });
    }
    for (const option of command.options) rules.push(complete(at(command.path), optionRule(option)));
  }

  return `# fish completion for openshell. Generated by \`openshell completion fish\`; install with
#   openshell completion fish > ~/.config/fish/completions/openshell.fish

complete -c openshell -e

# Sandbox names from the active gateway; nothing (quickly) when it is not reachable.
function __openshell_sandbox_names
    if command -q timeout
        command timeout 3 ${QUIET_LIST}
    else
        command ${QUIET_LIST}
    end
end

# Gateway names this CLI knows (no network).
function __openshell_gateway_names
    command ${QUIET_GATEWAYS}
end

# Prints the path of subcommand $argv[2] (a name or an alias) of the command at path $argv[1].
function __openshell_child
    switch "$argv[1]/$argv[2]"
${children.join("\n")}
        case '*'
            return 1
    end
end

# Succeeds when option $argv[2] of the command at path $argv[1] takes a value.
function __openshell_valued
    switch "$argv[1]/$argv[2]"
${valued.length ? `        case ${valued.join(" ")}\n            return 0\n` : ""}    end
    return 1
end

# Succeeds when the command line (up to the cursor) is at subcommand path $argv[1] ('*': any),
# with at least $argv[2] and at most $argv[3] positional arguments typed; never after "--".
function __openshell_at
    set -l tokens (commandline -opc)
    set -l cmd ''
    set -l npos 0
    set -l skip 0
    for token in $tokens[2..-1]
        if test $skip -eq 1
            set skip 0
        else if string match -q -- '--' "$token"
            return 1
        else if string match -q -- '--*=*' "$token"
            continue
        else if string match -q -- '-?*' "$token"
            __openshell_valued "$cmd" "$token"; and set skip 1
        else if test $npos -eq 0; and __openshell_child "$cmd" "$token" >/dev/null
            set cmd (__openshell_child "$cmd" "$token")
        else
            set npos (math $npos + 1)
        end
    end
    if test "$argv[1]" != '*'
        test "$cmd" = "$argv[1]"; or return 1
    end
    if set -q argv[2]
        test $npos -ge $argv[2]; or return 1
    end
    if set -q argv[3]
        test $npos -le $argv[3]; or return 1
    end
    return 0
end

${rules.join("\n")}
`;
}
