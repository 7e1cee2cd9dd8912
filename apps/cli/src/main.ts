// The subpath, not the package root: `openshell --version` must not load the logger.
import { OPENSHELL_VERSION as VERSION } from "@openshell/core/version";
import { runCommandLine } from "./command-spec/run-command-line.js";
import { buildProgram } from "./program.js";

runCommandLine(process.argv.slice(2), (hooks) => buildProgram(VERSION, hooks)).then(
  (code) => {
    process.exitCode = code;
    // Open HTTP/2 sessions or stdin must not keep a finished command alive.
    setImmediate(() => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`openshell: ${(error instanceof Error && error.stack) || String(error)}\n`);
    process.exit(1);
  },
);
