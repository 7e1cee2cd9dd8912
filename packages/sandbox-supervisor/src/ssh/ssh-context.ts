import type { Logger } from "@openshell/core";
import type { ChildConfiner } from "../confinement/child-confiner.js";
import type { LoopbackConnection } from "../network/netns-connector.js";
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
  /**
   * Every child starts through the native launcher (identity, Landlock, seccomp, netns) when set;
   * undefined only for test-only supervisors (--test-only-no-isolation) and the SSH test harness.
   */
  confiner: ChildConfiner | undefined;
  /**
   * Connects `ssh -L` destinations inside the sandbox's network namespace (undefined: the
   * supervisor's own, where the test-only supervisors' children also run).
   */
  connectLoopback?: (host: string, port: number) => Promise<LoopbackConnection>;
}
