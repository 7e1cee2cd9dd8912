/**
 * Bad input found while parsing the command line (e.g. `--limit abc`): main.ts prints the message
 * and exits 2. Not OpenShellError: that would load @connectrpc on every start, `--version` included.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
