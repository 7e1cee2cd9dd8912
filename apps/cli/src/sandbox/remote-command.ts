/** Upstream: a terminal when both ends are terminals, unless --tty / --no-tty say otherwise. */
export function wantsTty(flag: unknown): boolean {
  if (flag === true) return true;
  if (flag === false) return false;
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}
