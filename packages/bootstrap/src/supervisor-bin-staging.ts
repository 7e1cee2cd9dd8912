import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { OpenShellError } from "@openshell/core";
import type { BootstrapProgress } from "./bootstrap-inputs.js";
import { installedPackageDir } from "./gateway-binaries.js";

const SUPERVISOR_PACKAGE = "@openshell/sandbox-supervisor";
/** The native modules stage-supervisor-bin.sh copies beside the supervisor (NATIVE_DEPS there). */
const NATIVE_MODULES = ["ssh2", "node-pty"];

/**
 * The supervisor directory the Docker driver mounts into every container: OPENSHELL_SUPERVISOR_BIN_DIR
 * when set, else staged into `out` by `staging/stage-supervisor-bin.sh` of the
 * `@openshell/sandbox-supervisor` package the installed Docker driver depends on (so the containers
 * run the supervisor of the gateway's version; a couple of seconds, on this CLI's Node when it is
 * 24). The driver copies it into its state dir keyed by content, so staging again is harmless.
 */
export async function ensureSupervisorBinStaged(
  progress: BootstrapProgress,
  env: NodeJS.ProcessEnv,
  out: string,
): Promise<string> {
  if (env.OPENSHELL_SUPERVISOR_BIN_DIR) return env.OPENSHELL_SUPERVISOR_BIN_DIR;
  const driverDir = installedPackageDir("@openshell/driver-docker");
  const supervisorDir = driverDir && installedPackageDir(SUPERVISOR_PACKAGE, driverDir);
  const script = supervisorDir && join(supervisorDir, "staging", "stage-supervisor-bin.sh");
  if (!script || !existsSync(script)) {
    throw new OpenShellError(
      "failed_precondition",
      `the Docker driver needs the supervisor staged for containers, and ${SUPERVISOR_PACKAGE} (with staging/stage-supervisor-bin.sh) does not resolve from @openshell/driver-docker: reinstall openshell (npm install -g openshell), or set OPENSHELL_SUPERVISOR_BIN_DIR to a directory that script staged`,
    );
  }
  const childEnv: NodeJS.ProcessEnv = { ...env };
  if (!childEnv.OPENSHELL_NODE_BIN && process.versions.node.split(".")[0] === "24")
    childEnv.OPENSHELL_NODE_BIN = process.execPath;
  // Staged before from the same inputs: nothing to do (a gateway start would otherwise spend
  // seconds on it every time).
  const stamp = stagingStamp(script, childEnv.OPENSHELL_NODE_BIN);
  const stampFile = join(out, ".staged-from");
  if (stamp && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return out;
  const step = progress.progress("Staging the sandbox supervisor for Docker containers");
  const child = spawn("bash", [script, out], { stdio: ["ignore", "ignore", "pipe"], env: childEnv });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  step.done();
  if (code !== 0) {
    throw new OpenShellError(
      "failed_precondition",
      `staging the supervisor failed (${script}, exit ${code}): ${stderr.trim()}`,
    );
  }
  for (const line of stderr.split("\n")) {
    const warning = /^stage-supervisor-bin: warning: (.*)$/.exec(line);
    if (warning?.[1]) progress.warn(warning[1]);
  }
  if (stamp) writeFileSync(stampFile, stamp);
  return out;
}

/**
 * What a staging depends on: the staging files, the supervisor bundle and launcher source it
 * installs, the native modules it copies (by version and place), the Node.
 */
export function stagingStamp(script: string, nodeBin: string | undefined): string | undefined {
  const supervisorDir = dirname(dirname(script));
  const bundle = join(supervisorDir, "dist", "openshell-sandbox.js");
  if (!existsSync(bundle) || !nodeBin) return undefined;
  const hash = createHash("sha256");
  const stagingDir = dirname(script);
  for (const name of readdirSync(stagingDir).sort())
    hash.update(`${name}\0`).update(readFileSync(join(stagingDir, name)));
  hash.update(readFileSync(bundle));
  hash.update(readFileSync(join(supervisorDir, "native", "openshell-launch.c")));
  for (const module of NATIVE_MODULES) {
    const dir = installedPackageDir(module, supervisorDir);
    const version =
      dir && (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: string }).version;
    hash.update(`${module}\0${dir ?? "missing"}\0${version ?? ""}\0`);
  }
  hash.update(`${nodeBin}\0${statSync(nodeBin).size}\0${statSync(nodeBin).mtimeMs}`);
  return hash.digest("hex");
}
