import { existsSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { isEnvironmentName, OpenShellError } from "@openshell/core";

/** Where the VM init writes the sandbox environment for a supervisor started in a template. */
export const AWAIT_IDENTITY_ENV = "OPENSHELL_AWAIT_IDENTITY";

/** The file the supervisor creates once it waits (`<file>.waiting`): the init saves the VM after it. */
export const waitingMarker = (identityFile: string): string => `${identityFile}.waiting`;

/**
 * Waits, doing nothing else, until the VM init hands over the sandbox's environment: the file
 * `identityFile` ("KEY=VALUE" lines, written by root, 0600) followed by SIGUSR2. Used by a
 * supervisor started inside a VM template (architecture/vm-snapshots.md): the VM is saved while it
 * waits here, with every module loaded, and each sandbox restored from it continues from here with
 * its own identity. Nothing before this point may draw random numbers (Node's `randomUUID` batch,
 * keys) or learn anything about a sandbox: all of it would be shared by every sandbox made from the
 * template. (OpenSSL's DRBG, seeded when Node started, reseeds itself after the restore because
 * the template's clock ran ahead: see the init.)
 */
export function awaitIdentity(identityFile: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    // A signal listener alone does not keep Node's event loop alive.
    const keepAlive = setInterval(() => undefined, 2 ** 30);
    const onSignal = () => {
      if (!existsSync(identityFile)) return; // not for us (yet): keep waiting
      process.off("SIGUSR2", onSignal);
      clearInterval(keepAlive);
      try {
        const text = readFileSync(identityFile, "utf8");
        unlinkSync(identityFile);
        resolve(parseEnvironmentLines(text));
      } catch (error) {
        reject(
          new OpenShellError(
            "config_invalid",
            `cannot read the sandbox identity from ${identityFile}: ${(error as Error).message}`,
          ),
        );
      }
    };
    process.on("SIGUSR2", onSignal);
    writeFileSync(waitingMarker(identityFile), `${process.pid}\n`);
  });
}

/** "KEY=VALUE" lines (values verbatim, split at the first "="); other lines are ignored. */
export function parseEnvironmentLines(text: string): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at <= 0) continue;
    const key = line.slice(0, at);
    if (!isEnvironmentName(key)) continue;
    environment[key] = line.slice(at + 1);
  }
  return environment;
}

/** Makes `environment` the whole of `process.env` (what the supervisor and its children see). */
export function replaceProcessEnvironment(environment: Record<string, string>): void {
  for (const key of Object.keys(process.env)) delete process.env[key];
  Object.assign(process.env, environment);
}
