import { type Command, CommanderError } from "commander";
import type { ProgramHooks } from "./commander-adapter.js";
import { UsageError } from "./usage-error.js";

/** Splits off everything after the first `--`: the command to run in the sandbox. */
function splitTrailing(argv: string[]): { own: string[]; trailing: string[] } {
  const index = argv.indexOf("--");
  return index < 0
    ? { own: argv, trailing: [] }
    : { own: argv.slice(0, index), trailing: argv.slice(index + 1) };
}

/**
 * Parses `argv` with the program `build` returns and runs the command: its exit code, or the
 * documented one for whatever went wrong (usage 2; an error's code through ui/cli-error.ts), after
 * printing one sentence about it.
 */
export async function runCommandLine(
  argv: string[],
  build: (hooks: ProgramHooks) => Command,
): Promise<number> {
  const { own, trailing } = splitTrailing(argv);
  let exitCode = 0;
  const program = build({ trailing, onExit: (code) => (exitCode = code) });
  try {
    await program.parseAsync(own, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has printed the message (or the help / version) already.
      return error.exitCode === 0 ? 0 : 2;
    }
    const { ExitCode, renderError } = await import("../ui/cli-error.js");
    const verbose = own.some((arg) => /^-v+$/.test(arg) || arg === "--verbose");
    const rendered = renderError(error, verbose);
    // Bad values found while parsing (`--limit abc`) are bad usage.
    const code = error instanceof UsageError ? ExitCode.usage : rendered.exitCode;
    // Under ssh (as ProxyCommand) the line must say who is talking.
    const mark = process.stderr.isTTY && !process.env.NO_COLOR ? "\u001b[31m✗\u001b[0m" : "✗";
    process.stderr.write(`${own[0] === "ssh-proxy" ? "openshell ssh-proxy:" : mark} ${rendered.text}\n`);
    return code;
  }
}
