import { type Logger, OpenShellError } from "@openshell/core";
import { ensurePrivateDatabaseFiles } from "./private-database-files.js";
import { SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";

/**
 * Opens the store named by --db-url: `sqlite:PATH`, `sqlite://PATH`, `sqlite::memory:`. A file
 * database and its WAL/SHM files are made private to the gateway's user first.
 */
export function openStore(dbUrl: string, logger: Logger): Store {
  if (dbUrl.startsWith("sqlite:")) {
    let path = dbUrl.slice("sqlite:".length);
    if (path.startsWith("//")) path = path.slice(2);
    path = path.split("?")[0] ?? "";
    if (path === "") {
      throw new OpenShellError(
        "config_invalid",
        "--db-url 'sqlite:' needs a path, e.g. sqlite:/var/lib/openshell/gateway.db or sqlite::memory:",
      );
    }
    if (path === ":memory:") return SqliteStore.open(":memory:");
    ensurePrivateDatabaseFiles(path, logger);
    return SqliteStore.open(path);
  }
  if (dbUrl.startsWith("postgres://") || dbUrl.startsWith("postgresql://")) {
    throw new OpenShellError(
      "config_invalid",
      "Postgres is not supported by this build yet; use --db-url sqlite:PATH (the embedded default)",
    );
  }
  throw new OpenShellError(
    "config_invalid",
    `unsupported database URL scheme: ${dbUrl} (use sqlite:PATH or sqlite::memory:)`,
  );
}
