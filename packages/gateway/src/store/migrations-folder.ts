import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The drizzle-kit migrations ship beside the package (packages/gateway/drizzle). The same code runs
 * from src/ (tests) and from the bundle in dist/, so walk up from this file to find them.
 */
export function findMigrationsFolder(): string {
  const override = process.env.OPENSHELL_MIGRATIONS_DIR;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "drizzle");
    if (existsSync(join(candidate, "meta", "_journal.json"))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(
    "the database migrations (drizzle/meta/_journal.json) were not found next to the gateway; reinstall it",
  );
}
