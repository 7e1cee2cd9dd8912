import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { OpenShellError } from "@openshell/core";
import { isExecutableFile } from "../process/executable-file.js";

/** The unprivileged account every shell, command and sftp-server of the SSH server runs as. */
export interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** Login shell used for `shell` and `<shell> -lc <command>`; never a nologin placeholder. */
  shell: string;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

const FALLBACK_SHELLS = ["/bin/bash", "/bin/sh"];
const PLACEHOLDER_SHELLS = new Set(["nologin", "false"]);

/** Finds `name` in the text of an /etc/passwd file (name:password:uid:gid:gecos:home:shell). */
export function findPasswdEntry(passwd: string, name: string): PasswdEntry | undefined {
  for (const line of passwd.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 7 || fields[0] !== name) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || fields[2] === "" || fields[3] === "") continue;
    return { name, uid, gid, home: fields[5] || "/", shell: fields[6]?.trim() ?? "" };
  }
  return undefined;
}

/**
 * The shell to start for the user: theirs when it is a real, executable shell, else bash or sh, so
 * that system accounts whose shell is nologin (like `nobody`) still get a working session.
 */
export function chooseLoginShell(passwdShell: string, isExecutable: (path: string) => boolean): string {
  if (passwdShell && !PLACEHOLDER_SHELLS.has(basename(passwdShell)) && isExecutable(passwdShell)) {
    return passwdShell;
  }
  const fallback = FALLBACK_SHELLS.find(isExecutable);
  if (!fallback) {
    throw new OpenShellError(
      "failed_precondition",
      `no usable login shell: '${passwdShell || "(none)"}' is not executable and neither is ${FALLBACK_SHELLS.join(" nor ")}; install bash in the sandbox image`,
    );
  }
  return fallback;
}

export function resolveRunAsUser(name: string, passwdPath = "/etc/passwd"): RunAsUser {
  let passwd: string;
  try {
    passwd = readFileSync(passwdPath, "utf8");
  } catch (error) {
    throw new OpenShellError(
      "failed_precondition",
      `cannot read ${passwdPath} to resolve sandbox user '${name}': ${(error as Error).message}`,
      { cause: error },
    );
  }
  const entry = findPasswdEntry(passwd, name);
  if (!entry) {
    throw new OpenShellError(
      "failed_precondition",
      `sandbox user '${name}' not found in ${passwdPath}; create it or pass --run-as-user`,
    );
  }
  return { ...entry, shell: chooseLoginShell(entry.shell, isExecutableFile) };
}
