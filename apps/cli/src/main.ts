// The subpath, not the package root: `openshell --version` must not load the logger.
import { OPENSHELL_VERSION as VERSION } from "@openshell/core/version";
import { CommanderError } from "commander";
import { UsageError } from "./command-spec/usage-error.js";
import { buildProgram } from "./program.js";

/** Splits off everything after the first `--`: the command to run in the sandbox. */
function splitTrailing(argv: string[]): { own: string[]; trailing: string[] } {
  const index = argv.indexOf("--");
  return index < 0
    ? { own: argv, trailing: [] }
    : { own: argv.slice(0, index), trailing: argv.slice(index + 1) };
}

async function main(argv: string[]): Promise<number> {
  const { own, trailing } = splitTrailing(argv);
  let exitCode = 0;
  const program = buildProgram(VERSION, { trailing, onExit: (code) => (exitCode = code) });
  try {
    await program.parseAsync(own, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has printed the message (or the help / version) already.
      return error.exitCode === 0 ? 0 : 2;
    }
    const { ExitCode, renderError } = await import("./ui/cli-error.js");
    const verbose = own.some((arg) => /^-v+$/.test(arg) || arg === "--verbose");
    const rendered = renderError(error, verbose);
    const { text } = rendered;
    // Bad values found while parsing (`--limit abc`) are bad usage.
    const code = error instanceof UsageError ? ExitCode.usage : rendered.exitCode;
    // Under ssh (as ProxyCommand) the line must say who is talking.
    const mark = process.stderr.isTTY && !process.env.NO_COLOR ? "\u001b[31m✗\u001b[0m" : "✗";
    process.stderr.write(`${own[0] === "ssh-proxy" ? "openshell ssh-proxy:" : mark} ${text}\n`);
    return code;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Open HTTP/2 sessions or stdin must not keep a finished command alive.
    setImmediate(() => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`openshell: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  },
);
