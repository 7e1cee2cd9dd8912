import { createInterface } from "node:readline/promises";
import { OpenShellError } from "@openshell/core";

/**
 * Asks `question` on the terminal unless `yes` (--yes) was given. Without a terminal to ask on it
 * refuses (exit 2) with `refusal`, which says to pass --yes. Returns false when the answer is no.
 */
export async function confirmOrRefuse(options: {
  yes: boolean;
  question: string;
  refusal: string;
  input?: NodeJS.ReadStream;
}): Promise<boolean> {
  if (options.yes) return true;
  const input = options.input ?? process.stdin;
  if (!input.isTTY) throw new OpenShellError("invalid_argument", options.refusal);
  const prompt = createInterface({ input, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(`${options.question} [y/N] `)).trim());
  } finally {
    prompt.close();
  }
}
