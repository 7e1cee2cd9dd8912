import { OpenShellError } from "@openshell/core";
import { CliContext } from "../cli-context.js";
import { completionScript, type Shell } from "../completion/completion-script.js";
import { buildProgram, type CommandInvocation } from "../program.js";

export async function run(invocation: CommandInvocation): Promise<number> {
  const ctx = CliContext.of(invocation);
  const shell = invocation.args[0] as string;
  if (shell !== "bash" && shell !== "zsh" && shell !== "fish")
    throw new OpenShellError("invalid_argument", `no completion for '${shell}': use bash, zsh or fish`);
  const program = buildProgram("", { trailing: [], onExit: () => undefined });
  ctx.output.stdout.write(completionScript(program, shell as Shell));
  return 0;
}
