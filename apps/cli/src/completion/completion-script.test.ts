import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { argument, type Completion, defineCommand, option } from "../command-spec/define-command.js";
import { command, type ProgramSpec } from "../command-spec/program-spec.js";
import { buildProgram, PROGRAM } from "../program.js";
import { completionScript, type Shell } from "./completion-script.js";

const program = buildProgram("0.0.0", { trailing: [], onExit: () => {} });

interface Node {
  /** Canonical names from the root, space-separated ("" for the root). */
  path: string;
  command: Command;
}

/** Every command a user can see (hidden ones and commander's implicit `help` left out). */
function visibleCommands(command: Command, path = ""): Node[] {
  const children = command
    .createHelp()
    .visibleCommands(command)
    .filter((child) => command.commands.includes(child));
  return [
    { path, command },
    ...children.flatMap((child) => visibleCommands(child, path ? `${path} ${child.name()}` : child.name())),
  ];
}

const nodes = visibleCommands(program);
/** Every command spec a user can see. */
const visibleSpecs = PROGRAM.entries
  .flatMap((entry) => (entry.kind === "command" ? [entry] : entry.commands))
  .filter((entry) => !entry.spec.hidden);
const parents = nodes.filter((node) => node.command.commands.length > 0);
const visibleChildren = (node: Node) => nodes.filter((other) => other.command.parent === node.command);
const ownLongOptions = (command: Command) =>
  command
    .createHelp()
    .visibleOptions(command)
    .map((option) => option.long)
    .filter((long) => long !== undefined);
const globalLongOptions = program.options
  .filter((option) => !option.hidden && option.long !== "--version")
  .map((option) => option.long!);

const has = (shell: string) => spawnSync("sh", ["-c", `command -v ${shell}`]).status === 0;

let dir: string;
const scriptFile = (shell: Shell) => join(dir, `openshell.${shell}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "openshell-completion-"));
  for (const shell of ["bash", "zsh", "fish"] as const)
    writeFileSync(scriptFile(shell), completionScript(PROGRAM, shell));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("the tree the tests walk is the real one", () => {
  expect(nodes.map((node) => node.path)).toEqual(
    expect.arrayContaining([
      "gateway",
      "gateway start",
      "sandbox",
      "sandbox create",
      "sandbox upload",
      "sandbox stop",
      "sandbox start",
      "logs",
    ]),
  );
  expect(nodes.map((node) => node.path)).not.toContain("ssh-proxy");
  expect(globalLongOptions).toEqual(expect.arrayContaining(["--gateway", "--output", "--verbose"]));
});

describe.each(["bash", "zsh", "fish"] as const)("%s", (shell) => {
  it("leaves out hidden commands and their options", () => {
    const script = completionScript(PROGRAM, shell);
    expect(script).not.toContain("ssh-proxy");
    expect(script).not.toContain("--sandbox-id");
    expect(script).not.toContain("--tls-ca");
  });

  it("lists sandbox names quietly", () => {
    expect(completionScript(PROGRAM, shell)).toContain("openshell sandbox list --names 2>/dev/null");
  });
});

describe("bash", () => {
  let cwd: string;
  let fakeBin: string;

  beforeAll(() => {
    cwd = join(dir, "cwd");
    mkdirSync(cwd);
    writeFileSync(join(cwd, "policy.yaml"), "");
    writeFileSync(join(cwd, "notes.txt"), "");
    fakeBin = join(dir, "bin");
    mkdirSync(fakeBin);
  });

  /** Sandbox and gateway names, as `openshell sandbox|gateway list --names` print them. */
  const NAMES = [
    `[ "$*" = "sandbox list --names" ] && exec printf 'alpha\\nbeta\\nalbatross\\n'`,
    `[ "$*" = "gateway list --names" ] && exec printf 'local\\nlab\\n'`,
    "exit 2",
  ].join("\n");

  /** A stand-in `openshell` on PATH, for the sandbox-name lookups. */
  function fakeOpenshell(body: string) {
    writeFileSync(join(fakeBin, "openshell"), `#!/bin/sh\n${body}\n`);
    chmodSync(join(fakeBin, "openshell"), 0o755);
  }

  const COMPLETE_IN_BASH =
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash script; ${…} is bash's expansion
    'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _openshell; printf "%s\\n" "${COMPREPLY[@]}"';

  /** What _openshell puts in COMPREPLY for the command line `words` (the last one is being typed). */
  function complete(...words: string[]): string[] {
    return completeWith(scriptFile("bash"), ...words);
  }

  function completeWith(script: string, ...words: string[]): string[] {
    const result = spawnSync(
      "bash",
      ["--norc", "--noprofile", "-c", COMPLETE_IN_BASH, "bash", script, "openshell", ...words],
      { cwd, encoding: "utf8", env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}` } },
    );
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    return result.stdout.split("\n").filter((line) => line !== "");
  }

  it("is valid bash and registers _openshell", () => {
    expect(spawnSync("bash", ["-n", scriptFile("bash")], { encoding: "utf8" }).stderr).toBe("");
    const registered = spawnSync(
      "bash",
      ["--norc", "-c", `source "$1"; complete -p openshell`, "bash", scriptFile("bash")],
      {
        encoding: "utf8",
      },
    );
    expect(registered.stdout.trim()).toBe("complete -F _openshell openshell");
  });

  it("completes subcommands at every depth", () => {
    expect(complete("sa")).toEqual(["sandbox"]);
    expect(complete("sandbox", "cr")).toEqual(["create"]);
    expect(complete("gateway", "st")).toEqual(["start", "stop", "status"]);
    expect(complete("sandbox", "st")).toEqual(["stop", "start"]);
    for (const parent of parents) {
      const words = parent.path ? parent.path.split(" ") : [];
      expect(complete(...words, ""), `openshell ${parent.path} <TAB>`).toEqual(
        visibleChildren(parent).map((child) => child.command.name()),
      );
    }
  });

  it("walks aliases and skips option values", () => {
    expect(complete("sb", "cr")).toEqual(["create"]);
    expect(complete("gw", "ls", "--")).toContain("--help");
    expect(complete("-g", "mine", "sa")).toEqual(["sandbox"]);
    expect(complete("sandbox", "exec", "--workdir", "/tmp", "--ti")).toEqual(["--timeout"]);
    // An alias is offered only when no name matches.
    expect(complete("sandbox", "r")).toEqual(["rm"]);
    expect(complete("f")).toEqual(["forward"]);
  });

  it("never offers the hidden ssh-proxy", () => {
    expect(complete("ss")).toEqual([]);
    expect(complete("")).not.toContain("ssh-proxy");
    expect(complete("ssh-proxy", "--t")).toEqual([]);
  });

  it("offers every option of the deepest command plus the global ones", () => {
    expect(complete("sandbox", "create", "--po")).toEqual(["--policy"]);
    for (const node of nodes) {
      const words = node.path ? node.path.split(" ") : [];
      const offered = complete(...words, "--");
      for (const long of [...ownLongOptions(node.command), ...globalLongOptions])
        expect(offered, `openshell ${node.path} --<TAB>`).toContain(long);
    }
    expect(complete("sandbox", "--")).not.toContain("--policy");
    expect(complete("sandbox", "list", "--")).not.toContain("--version");
  });

  it("completes option values: --output formats, files", () => {
    expect(complete("--output", "")).toEqual(["text", "json"]);
    expect(complete("sandbox", "list", "-o", "j")).toEqual(["json"]);
    // `--output=` arrives as "--output" "=" (COMP_WORDBREAKS).
    expect(complete("--output", "=")).toEqual(["text", "json"]);
    expect(complete("--output", "=", "t")).toEqual(["text"]);
    expect(complete("sandbox", "create", "--policy", "pol")).toEqual(["policy.yaml"]);
    expect(complete("gateway", "add", "--ca-cert", "")).toEqual(["notes.txt", "policy.yaml"]);
    expect(complete("sandbox", "create", "--name", "")).toEqual([]);
    expect(complete("policy", "set", "--policy", "pol")).toEqual(["policy.yaml"]);
    expect(complete("pol", "set", "--policy", "pol")).toEqual(["policy.yaml"]);
    expect(complete("settings", "set", "--key", "")).toEqual(["ocsf_json_enabled"]);
  });

  it("completes positional arguments: shells, files", () => {
    expect(complete("completion", "")).toEqual(["bash", "zsh", "fish"]);
    expect(complete("completion", "z")).toEqual(["zsh"]);
    expect(complete("sandbox", "upload", "box", "no")).toEqual(["notes.txt"]);
    expect(complete("sandbox", "download", "box", "/etc/hosts", "no")).toEqual(["notes.txt"]);
    // The remote path is not completed from local files.
    expect(complete("sandbox", "download", "box", "no")).toEqual([]);
  });

  it("completes sandbox names from `openshell sandbox list --names`", () => {
    fakeOpenshell(NAMES);
    expect(complete("sandbox", "get", "")).toEqual(["alpha", "beta", "albatross"]);
    expect(complete("sandbox", "connect", "al")).toEqual(["alpha", "albatross"]);
    expect(complete("sandbox", "fork", "al")).toEqual(["alpha", "albatross"]);
    expect(complete("sandbox", "fork", "alpha", "--name", "")).toEqual([]);
    expect(complete("sb", "rm", "alpha", "b")).toEqual(["beta"]);
    expect(complete("logs", "b")).toEqual(["beta"]);
    expect(complete("forward", "stop", "8000", "b")).toEqual(["beta"]);
    expect(complete("sandbox", "upload", "b")).toEqual(["beta"]);
    expect(complete("sandbox", "stop", "b")).toEqual(["beta"]);
    expect(complete("sb", "start", "al")).toEqual(["alpha", "albatross"]);
    expect(complete("sandbox", "start", "--no")).toEqual(["--no-wait"]);
  });

  it("completes gateway names from `openshell gateway list --names`", () => {
    fakeOpenshell(NAMES);
    // gateway select NAME is a gateway, not a sandbox.
    expect(complete("gateway", "select", "")).toEqual(["local", "lab"]);
    expect(complete("gateway", "stop", "--name", "la")).toEqual(["lab"]);
    expect(complete("-g", "lo")).toEqual(["local"]);
    expect(complete("sandbox", "list", "--gateway", "")).toEqual(["local", "lab"]);
  });

  it("completes what each spec declares, not what its names suggest", () => {
    // A command whose names point one way and whose declared completions point another.
    const probe = defineCommand({
      path: "probe",
      description: "a command of this test only",
      arguments: {
        name: argument.required("sandbox name", { complete: "files" }),
        local: argument.optional("local file", { complete: "sandboxes" }),
        dest: argument.variadic("local directory", { complete: ["north", "south"] }),
      },
      options: {
        policy: option.string("--policy <file>", "policy file", { complete: "none" }),
        certs: option.list("--certs <file>", "certificate files", { complete: "gateways" }),
        sandbox: option.string("--sandbox <name>", "sandbox", { complete: ["x1", "x2"] }),
      },
    });
    const spec: ProgramSpec = {
      ...PROGRAM,
      entries: [command(probe, () => Promise.reject(new Error("never run")))],
    };
    const file = join(dir, "probe.bash");
    writeFileSync(file, completionScript(spec, "bash"));
    fakeOpenshell(NAMES);
    expect(completeWith(file, "probe", "no")).toEqual(["notes.txt"]);
    expect(completeWith(file, "probe", "notes.txt", "al")).toEqual(["alpha", "albatross"]);
    expect(completeWith(file, "probe", "notes.txt", "alpha", "")).toEqual(["north", "south"]);
    expect(completeWith(file, "probe", "notes.txt", "alpha", "north", "s")).toEqual(["south"]);
    expect(completeWith(file, "probe", "--policy", "pol")).toEqual([]);
    expect(completeWith(file, "probe", "--certs", "")).toEqual(["local", "lab"]);
    expect(completeWith(file, "probe", "--sandbox", "")).toEqual(["x1", "x2"]);
  });

  it("gives every declared completion of every command its branch", () => {
    const script = readFileSync(scriptFile("bash"), "utf8");
    const action = (complete: Completion) =>
      complete === "files"
        ? "__openshell_files"
        : complete === "sandboxes"
          ? "__openshell_sandbox_names"
          : complete === "gateways"
            ? "__openshell_gateway_names"
            : complete === "none"
              ? ":"
              : `__openshell_words '${complete.join(" ")}'`;
    for (const { spec } of visibleSpecs) {
      Object.values(spec.arguments).forEach((argument, index) => {
        const where = argument.shape === "variadic" ? `'${spec.path}/'*` : `'${spec.path}/${index}'`;
        expect(script, `${spec.path} argument ${index}`).toContain(
          `    ${where}) ${action(argument.complete)} ;;`,
        );
      });
      for (const option of Object.values(spec.options)) {
        if (!/[<[]/.test(option.flags) || option.complete === "none") continue;
        const long = option.flags.split(/[ ,]+/).find((flag) => flag.startsWith("--"));
        expect(script, `${spec.path} ${long}`).toMatch(
          new RegExp(
            `'${spec.path}/${long}'\\) ${action(option.complete).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} ;;`,
          ),
        );
      }
    }
  });

  it("stays quiet when the gateway is unreachable or openshell is missing", () => {
    fakeOpenshell(`echo "✗ gateway unreachable" >&2\nexit 3`);
    expect(complete("sandbox", "get", "")).toEqual([]); // complete() also asserts empty stderr
    rmSync(join(fakeBin, "openshell"));
    expect(complete("sandbox", "exec", "")).toEqual([]);
  });

  it("stays out of the command after --", () => {
    expect(complete("sandbox", "create", "--", "--po")).toEqual([]);
    expect(complete("sandbox", "exec", "box", "--", "")).toEqual([]);
  });
});

describe("zsh", () => {
  const script = () => completionScript(PROGRAM, "zsh");

  it.runIf(has("zsh"))("is valid zsh", () => {
    const result = spawnSync("zsh", ["-n", scriptFile("zsh")], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });

  it("is a #compdef file with balanced quoting", () => {
    expect(script().startsWith("#compdef openshell\n")).toBe(true);
    // What the script uses parses the same in bash: a check of quotes and brackets without zsh.
    expect(spawnSync("bash", ["-n", scriptFile("zsh")], { encoding: "utf8" }).stderr).toBe("");
  });

  it("describes every visible command under its parent", () => {
    const text = script();
    for (const parent of parents) {
      const fn = parent.path ? `_openshell_${parent.path.replaceAll(/[^a-z0-9]+/g, "_")}` : "_openshell";
      const body = text.slice(
        text.indexOf(`\n${fn}() {`),
        text.indexOf("\n}\n", text.indexOf(`\n${fn}() {`)),
      );
      for (const child of visibleChildren(parent)) {
        const name = child.command.name();
        const entry = `${name}:${child.command.description()}`.replaceAll("'", "'\\''");
        expect(body, `${fn} describes ${name}`).toContain(`'${entry}'`);
        expect(body).toMatch(new RegExp(`'${name}'(\\|'[a-z]+')*\\) _openshell_`));
      }
    }
  });

  it("gives every command its options and arguments", () => {
    const text = script();
    for (const node of nodes) {
      const fn = node.path ? `_openshell_${node.path.replaceAll(/[^a-z0-9]+/g, "_")}` : "_openshell";
      const start = text.indexOf(`\n${fn}() {`);
      expect(start, fn).toBeGreaterThan(0);
      const body = text.slice(start, text.indexOf("\n}\n", start));
      for (const long of [...ownLongOptions(node.command), ...globalLongOptions])
        expect(body, `${fn} ${long}`).toMatch(new RegExp(`'(\\([^)]*\\)|\\*)?${long}=?\\[`));
    }
    expect(text).toContain(`'--policy=[sandbox policy YAML]:file:_files'`);
    expect(text).toContain(
      `'(-o --output)--output=[output format of list/get/status commands]:format:(text json)'`,
    );
    expect(text).toContain(`'1:bash | zsh | fish:(bash zsh fish)'`);
    expect(text).toMatch(/_openshell_sandbox_get\(\) \{[^}]*'1:sandbox name:__openshell_sandbox_names'/);
    expect(text).toMatch(/_openshell_sandbox_delete\(\) \{[^}]*'\*:sandbox names:__openshell_sandbox_names'/);
  });
});

/** Splits a line of fish into words, removing quotes; throws on an unterminated quote. */
function fishWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "\\" && (line[i + 1] === "'" || line[i + 1] === "\\")) word += line[++i];
      else if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === "\\") word += line[++i] ?? "";
      else if (c === '"') quote = undefined;
      else word += c;
    } else if (c === " ") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      inWord = true;
      if (c === "'" || c === '"') quote = c;
      else word += c;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in: ${line}`);
  if (inWord) words.push(word);
  return words;
}

describe("fish", () => {
  const rules = () =>
    completionScript(PROGRAM, "fish")
      .split("\n")
      .filter((line) => line.startsWith("complete -c openshell -n "))
      .map((line) => {
        const words = fishWords(line);
        const value = (flag: string) => {
          const index = words.indexOf(flag);
          return index < 0 ? undefined : words[index + 1];
        };
        return { words, condition: value("-n"), arguments: value("-a"), long: value("-l") };
      });

  it.runIf(has("fish"))("is valid fish", () => {
    const result = spawnSync("fish", ["-n", scriptFile("fish")], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });

  it.runIf(has("fish"))("completes in a real fish (complete -C)", () => {
    const candidates = (line: string) =>
      spawnSync("fish", ["--no-config", "-c", `source ${scriptFile("fish")}; complete -C '${line}'`], {
        encoding: "utf8",
      })
        .stdout.split("\n")
        .map((entry) => entry.split("\t")[0]);
    expect(candidates("openshell sa")).toContain("sandbox");
    expect(candidates("openshell sandbox cr")).toContain("create");
    expect(candidates("openshell gateway list ")).not.toContain("create");
    expect(candidates("openshell sandbox create --po")).toContain("--policy");
    expect(candidates("openshell ")).not.toContain("ssh-proxy");
  });

  it("quotes every line properly", () => {
    for (const line of completionScript(PROGRAM, "fish").split("\n"))
      expect(() => fishWords(line)).not.toThrow();
  });

  it("has a rule for every visible command path", () => {
    const all = rules();
    for (const parent of parents)
      for (const child of visibleChildren(parent)) {
        const rule = all.find(
          (r) =>
            r.condition === `__openshell_at '${parent.path}' 0 0` && r.arguments === child.command.name(),
        );
        expect(rule, `openshell ${child.path}`).toBeDefined();
        expect(rule!.words).toContain("-d");
      }
    expect(all.some((r) => r.arguments?.includes("ssh-proxy"))).toBe(false);
  });

  it("has a rule for every option of every command, and the global ones everywhere", () => {
    const all = rules();
    for (const node of nodes)
      for (const long of ownLongOptions(node.command).filter((long) => !globalLongOptions.includes(long)))
        expect(
          all.some((r) => r.condition === `__openshell_at '${node.path}'` && r.long === long.slice(2)),
          `openshell ${node.path} ${long}`,
        ).toBe(true);
    for (const long of globalLongOptions)
      expect(
        all.some((r) => r.condition === "__openshell_at '*'" && r.long === long.slice(2)),
        long,
      ).toBe(true);
    const output = all.find((r) => r.long === "output")!;
    expect(output.arguments).toBe("text json");
    const policy = all.find((r) => r.long === "policy")!;
    expect(policy.words).toContain("-F");
  });

  it("completes arguments: sandbox names, shells, files", () => {
    const all = rules();
    const forArgument = (path: string, index: number, max: number | "" = index) =>
      all.find((r) => r.condition === `__openshell_at '${path}' ${index}${max === "" ? "" : ` ${max}`}`);
    expect(forArgument("completion", 0)?.arguments).toBe("bash zsh fish");
    expect(forArgument("sandbox upload", 1)?.words).toContain("-F");
    expect(forArgument("gateway select", 0)?.arguments).toBe("(__openshell_gateway_names)");
    // Every argument that completes to something has its rule, as its spec declares.
    for (const { spec } of visibleSpecs)
      Object.values(spec.arguments).forEach((argument, index) => {
        const rule = forArgument(spec.path, index, argument.shape === "variadic" ? "" : index);
        if (argument.complete === "none") expect(rule, `${spec.path} ${index}`).toBeUndefined();
        else if (argument.complete === "files") expect(rule?.words, `${spec.path} ${index}`).toContain("-F");
        else if (typeof argument.complete === "string")
          expect(rule?.arguments, `${spec.path} ${index}`).toBe(
            argument.complete === "sandboxes" ? "(__openshell_sandbox_names)" : "(__openshell_gateway_names)",
          );
        else expect(rule?.arguments, `${spec.path} ${index}`).toBe(argument.complete.join(" "));
      });
  });
});
