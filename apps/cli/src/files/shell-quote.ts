/**
 * Quotes a value for a POSIX shell: wraps it in single quotes, inside which nothing is special, and
 * spells each embedded single quote as `'\''` (close, escaped quote, reopen).
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/** An argv as one POSIX shell command line; plain words stay unquoted so the line stays readable. */
export function shellCommandLine(argv: string[]): string {
  return argv.map((arg) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : shellQuote(arg))).join(" ");
}
