import type { Logger } from "@openshell/core";
import type { RunAsUser } from "./run-as-user.js";

/** What every connection and channel handler of one SandboxSshServer shares. */
export interface SshServerContext {
  logger: Logger;
  user: RunAsUser;
  workdir: string;
  env: Readonly<Record<string, string>>;
  /** Undefined when no sftp-server binary exists: the sftp subsystem is then refused. */
  sftpServerPath: string | undefined;
  setprivPath: string | undefined;
  /** Whether children must switch to the user's uid/gid (false when already running as them). */
  switchUser: boolean;
}
