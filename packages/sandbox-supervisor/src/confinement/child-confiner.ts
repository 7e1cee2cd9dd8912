import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { emitOcsf, type Logger, OpenShellError } from "@openshell/core";
import type { PolicyState } from "../policy/policy-state.js";
import { findPasswdEntry, type RunAsUser } from "../ssh/run-as-user.js";

export const DEFAULT_LAUNCHER_PATH = "/opt/openshell/bin/openshell-launch";
/** How long a child waits for the first policy before it is refused. */
const POLICY_WAIT_MS = 30_000;
const CHECK_TIMEOUT_MS = 30_000;
/**
 * Read access the image's own tools need whatever the policy says: the VM image keeps Node (on
 * every user's PATH as /usr/local/bin/node) under /opt/openshell/node, outside upstream's /usr.
 */
const IMAGE_TOOL_PATHS = ["/opt/openshell/node"];

/** What one child is confined to: the launcher's arguments before `--`. */
export interface Confinement {
  uid: number;
  gid: number;
  groups: number[];
  readOnly: string[];
  readWrite: string[];
  landlock: "best_effort" | "hard_requirement" | "off";
  netnsPath: string | undefined;
}

export interface ChildConfinerOptions {
  launcherPath: string;
  policyState: PolicyState;
  /** The SSH server's user: the identity when the policy names none. */
  user: RunAsUser;
  /** Added read-write when the policy's `include_workdir` is set. */
  workdir: string;
  logger: Logger;
  /** The sandbox network namespace children enter (undefined: the supervisor's own). */
  netnsPath?: () => string | undefined;
  passwdPath?: string;
  groupPath?: string;
  policyWaitMs?: number;
}

/** Why `launcherPath` cannot be run (undefined: it is executable). */
export function launcherProblem(launcherPath: string): string | undefined {
  try {
    accessSync(launcherPath, constants.X_OK);
    return undefined;
  } catch (error) {
    return `the confinement launcher ${launcherPath} is not executable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); build it with packages/sandbox-supervisor/native/build.sh and pass --launcher, or stage the VM runtime again`;
  }
}

/** What a child is started as: the launcher, running `file args` once confined. */
export interface ConfinedCommand {
  file: string;
  args: string[];
}

/**
 * Starts children through the native launcher (`native/openshell-launch.c`) with the installed
 * policy's filesystem rules, Landlock compatibility and identity, and the sandbox network
 * namespace. Each distinct confinement is checked once with `openshell-launch --check` (the whole
 * sequence without the exec): its findings are logged as OCSF events, and a confinement that
 * cannot be applied refuses every child with the launcher's reason. Nothing runs unconfined.
 */
export class ChildConfiner {
  private readonly checks = new Map<string, Promise<void>>();

  constructor(private readonly options: ChildConfinerOptions) {}

  /** Fails with the reason when the launcher is missing (the supervisor says so at start). */
  launcherProblem(): string | undefined {
    return launcherProblem(this.options.launcherPath);
  }

  /** The launcher command line for `file args`; throws (children are refused) when it cannot confine. */
  async wrap(file: string, args: string[], cwd: string): Promise<ConfinedCommand> {
    const problem = this.launcherProblem();
    if (problem) throw new OpenShellError("failed_precondition", `refusing to start: ${problem}`);
    const flags = await this.checked(await this.current());
    return { file: this.options.launcherPath, args: [...flags, "--workdir", cwd, "--", file, ...args] };
  }

  /**
   * The start-up probe (fail closed): why the installed policy's confinement cannot be applied
   * (launcher missing, the policy's identity unknown, `openshell-launch --check` failing), or
   * undefined when it can. Without an installed policy only the launcher is looked at.
   */
  async probe(): Promise<string | undefined> {
    const missing = this.launcherProblem();
    if (missing || !this.options.policyState.policy) return missing;
    try {
      await this.checked(await this.current());
      return undefined;
    } catch (error) {
      return (error as Error).message.replace(/^refusing to start: /, "");
    }
  }

  /** Checks a confinement once (shared by concurrent children); resolves to its launcher flags. */
  private async checked(confinement: Confinement): Promise<string[]> {
    const flags = launcherFlags(confinement);
    const key = JSON.stringify(flags);
    let check = this.checks.get(key);
    if (!check) {
      check = this.check(flags, confinement);
      this.checks.set(key, check);
      // A failed check is tried again for the next child (a path may appear, a netns be rebuilt).
      check.catch(() => this.checks.delete(key));
    }
    await check;
    return flags;
  }

  /** The confinement the installed policy asks for (waits for the first policy). */
  async current(): Promise<Confinement> {
    const installed = await this.installedPolicy();
    const policy = installed.policy;
    const identity = this.identity(policy.process?.runAsUser ?? "", policy.process?.runAsGroup ?? "");
    const filesystem = policy.filesystem;
    const readWrite = [...(filesystem?.readWrite ?? [])];
    if (filesystem?.includeWorkdir && !readWrite.includes(this.options.workdir)) {
      readWrite.push(this.options.workdir);
    }
    const readOnly = [...(filesystem?.readOnly ?? [])];
    const anyPaths = readOnly.length > 0 || readWrite.length > 0;
    // As upstream: a policy without filesystem paths applies no Landlock ruleset at all.
    if (anyPaths) for (const path of IMAGE_TOOL_PATHS) if (existsSync(path)) readOnly.push(path);
    return {
      ...identity,
      readOnly,
      readWrite,
      landlock: !anyPaths
        ? "off"
        : policy.landlock?.compatibility === "hard_requirement"
          ? "hard_requirement"
          : "best_effort",
      netnsPath: this.options.netnsPath?.(),
    };
  }

  private async installedPolicy() {
    const { policyState } = this.options;
    if (policyState.policy) return policyState.policy;
    const waitMs = this.options.policyWaitMs ?? POLICY_WAIT_MS;
    return new Promise<NonNullable<PolicyState["policy"]>>((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe();
        reject(
          new OpenShellError(
            "unavailable",
            `refusing to start: no sandbox policy loaded within ${waitMs / 1000} s, so the child's confinement is unknown; check the supervisor's connection to the gateway`,
          ),
        );
      }, waitMs);
      const unsubscribe = policyState.onPolicyInstalled((installed) => {
        clearTimeout(timer);
        unsubscribe();
        resolve(installed);
      });
    });
  }

  /** The policy's run_as_user/run_as_group when set (upstream falls back to sandbox:sandbox), else the server's user. */
  private identity(userName: string, groupName: string): Pick<Confinement, "uid" | "gid" | "groups"> {
    const { user } = this.options;
    const passwdPath = this.options.passwdPath ?? "/etc/passwd";
    const groupPath = this.options.groupPath ?? "/etc/group";
    let uid = user.uid;
    let gid = user.gid;
    let name = user.name;
    if (userName && userName !== user.name) {
      const entry = findPasswdEntry(readFileSync(passwdPath, "utf8"), userName);
      if (!entry) {
        throw new OpenShellError(
          "failed_precondition",
          `refusing to start: the policy's run_as_user '${userName}' is not in ${passwdPath}`,
        );
      }
      ({ uid, gid, name } = entry);
    }
    const groups = readGroups(groupPath);
    if (groupName) {
      const group = groups.find((entry) => entry.name === groupName);
      if (!group) {
        throw new OpenShellError(
          "failed_precondition",
          `refusing to start: the policy's run_as_group '${groupName}' is not in ${groupPath}`,
        );
      }
      gid = group.gid;
    }
    // initgroups(): the groups that list the user as a member, besides the primary one.
    const supplementary = groups
      .filter((group) => group.members.includes(name) && group.gid !== gid && group.gid !== 0)
      .map((group) => group.gid);
    return { uid, gid, groups: [...new Set(supplementary)] };
  }

  private async check(flags: string[], confinement: Confinement): Promise<void> {
    const { launcherPath, logger } = this.options;
    const { code, stdout, stderr } = await runCheck(launcherPath, [
      "--check",
      "--report-fd",
      "1",
      ...flags,
      "--",
    ]);
    const fields = {
      uid: confinement.uid,
      gid: confinement.gid,
      landlock: confinement.landlock,
      netns: confinement.netnsPath ?? null,
    };
    for (const line of stdout.split("\n")) {
      if (!line) continue;
      let event: Record<string, string>;
      try {
        event = JSON.parse(line) as Record<string, string>;
      } catch {
        logger.warn({ line }, "unparsable line from the confinement launcher");
        continue;
      }
      logReport(logger, event, fields);
    }
    if (code !== 0) {
      const reason = stderr.trim().split("\n").at(-1) || `exit code ${code}`;
      emitOcsf(logger, {
        class: "FINDING",
        activity: "BLOCKED",
        severity: "HIGH",
        disposition: "BLOCKED",
        message: `platform-sandbox-unavailable: children are refused: ${reason}`,
        fields: { finding: "platform-sandbox-unavailable", ...fields, reason },
      });
      throw new OpenShellError("failed_precondition", `refusing to start: ${reason}`);
    }
    emitOcsf(logger, {
      class: "CONFIG",
      activity: "ENABLED",
      message: `child confinement ready (uid ${confinement.uid}, landlock ${confinement.landlock}, ${confinement.readOnly.length} read-only and ${confinement.readWrite.length} read-write paths)`,
      fields: { ...fields, read_only: confinement.readOnly, read_write: confinement.readWrite },
    });
  }
}

/** The launcher's flags for a confinement (everything before `--workdir` and `--`). */
function launcherFlags(confinement: Confinement): string[] {
  const flags: string[] = [];
  if (confinement.netnsPath) flags.push("--netns", confinement.netnsPath);
  flags.push("--uid", String(confinement.uid), "--gid", String(confinement.gid));
  if (confinement.groups.length > 0) flags.push("--groups", confinement.groups.join(","));
  for (const path of confinement.readOnly) flags.push("--ro", path);
  for (const path of confinement.readWrite) flags.push("--rw", path);
  flags.push("--landlock", confinement.landlock);
  return flags;
}

function logReport(logger: Logger, event: Record<string, string>, fields: Record<string, unknown>): void {
  switch (event.event) {
    case "finding":
      emitOcsf(logger, {
        class: "FINDING",
        activity: "BLOCKED",
        severity: "HIGH",
        disposition: "BLOCKED",
        message: `${event.finding}: ${event.reason}`,
        fields: { ...fields, finding: event.finding, reason: event.reason },
      });
      return;
    case "path-skipped":
      logger.warn(
        { ...fields, path: event.path, access: event.access, reason: event.reason },
        `landlock: ${event.access} path ${event.path} skipped (${event.reason})`,
      );
      return;
    case "landlock":
      logger.debug({ ...fields, ...event }, `landlock ${event.status}`);
      return;
    default:
      logger.debug({ ...fields, ...event }, `confinement launcher: ${event.event}`);
  }
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function readGroups(path: string): GroupEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const groups: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const [name, , gidText, members] = line.split(":");
    const gid = Number(gidText);
    if (!name || gidText === undefined || gidText === "" || !Number.isInteger(gid)) continue;
    groups.push({ name, gid, members: (members ?? "").split(",").filter(Boolean) });
  }
  return groups;
}

function runCheck(
  file: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env: {} });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), CHECK_TIMEOUT_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}cannot run ${file}: ${error.message}` });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
