// What the benches read from a gateway's log and a guest's console.

/** A guest's console as the benches print it: sandbox output, so every non-printable byte is `?`. */
export function printableConsole(text: string): string {
  return text.replace(/[^\n\x20-\x7e]/g, "?");
}

/** The pino JSON records among `text`'s lines (other lines, e.g. kernel output, are skipped). */
export function* jsonLogRecords<T extends object>(
  text: string,
): Generator<Partial<T> & { msg?: string; time?: string }> {
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      yield JSON.parse(line);
    } catch {
      // a line cut short or not JSON: not a record
    }
  }
}
