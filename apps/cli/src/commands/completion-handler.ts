import { OpenShellError } from "@openshell/core";
import { CliContext } from "../cli-context.js";
import type { CommandInput } from "../command-spec/program-spec.js";
import { completionScript } from "../completion/completion-script.js";
import { type completionCommand, SHELLS } from "./completion.js";

export async function run(input: CommandInput<typeof completionCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { shell } = input.args;
  const known = SHELLS.find((name) => name === shell);
  if (!known)
    throw new OpenShellError("invalid_argument", `no completion for '${shell}': use bash, zsh or fish`);
  ctx.output.stdout.write(completionScript(input.program, known));
  return 0;
}
