import { chmodSync, copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * The supervisors' TLS files for an https:// gateway, copied into `<state>/tls` (0700; key 0400,
 * root's, as the supervisor runs as root in the container) and bind-mounted read-only into each
 * container at /etc/openshell-tls/client.
 */
export function prepareTlsDir(files: { ca: string; cert: string; key: string }, dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [from, name, mode] of [
    [files.ca, "ca.crt", 0o444],
    [files.cert, "tls.crt", 0o444],
    [files.key, "tls.key", 0o400],
  ] as const) {
    const target = join(dir, name);
    copyFileSync(from, target);
    chmodSync(target, mode);
  }
  return dir;
}
