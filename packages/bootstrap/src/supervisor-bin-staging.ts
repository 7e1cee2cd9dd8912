import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { OpenShellError } from "@openshell/core";
import type { BootstrapProgress } from "./bootstrap-inputs.js";
import { installedPackageDir } from "./gateway-binaries.js";

/**
 * The supervisor directory the Docker driver mounts into every container: OPENSHELL_SUPERVISOR_BIN_DIR
 * when set, else staged into `out` by `stage-supervisor-bin.sh` (shipped in a checkout's
 * `@openshell/driver-kubernetes`; a couple of seconds, on this CLI's Node when it is 24). The
 * driver copies it into its state dir keyed by content, so staging again on every start is harmless.
 */
export async function ensureSupervisorBinStaged(
  progress: BootstrapProgress,
  env: NodeJS.ProcessEnv,
  out: string,
): Promise<string> {
  if (env.OPENSHELL_SUPERVISOR_BIN_DIR) return env.OPENSHELL_SUPERVISOR_BIN_DIR;
  const packageDir = installedPackageDir("@openshell/driver-kubernetes");
  const script = packageDir && join(packageDir, "supervisor", "stage-supervisor-bin.sh");
  if (!script || !existsSync(script)) {
    throw new OpenShellError(
      "failed_precondition",
      "the Docker driver needs the staged supervisor directory: set OPENSHELL_SUPERVISOR_BIN_DIR to one made by packages/driver-kubernetes/supervisor/stage-supervisor-bin.sh (a checkout stages it by itself)",
    );
  }
  const childEnv: NodeJS.ProcessEnv = { ...env };
  if (!childEnv.OPENSHELL_NODE_BIN && process.versions.node.split(".")[0] === "24")
    childEnv.OPENSHELL_NODE_BIN = process.execPath;
  // Staged before from the same script, supervisor bundle and Node: nothing to do (a gateway start
  // would otherwise spend seconds on it every time).
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
  if (stamp) writeFileSync(stampFile, stamp);
  return out;
}

/** What a staging depends on: the script, the supervisor bundle it installs (a checkout's), the Node. */
function stagingStamp(script: string, nodeBin: string | undefined): string | undefined {
  const bundle = join(dirname(script), "..", "..", "sandbox-supervisor", "dist", "openshell-sandbox.js");
  if (!existsSync(bundle) || !nodeBin) return undefined;
  const hash = createHash("sha256");
  hash.update(readFileSync(script));
  hash.update(readFileSync(bundle));
  hash.update(`${nodeBin}\0${statSync(nodeBin).size}\0${statSync(nodeBin).mtimeMs}`);
  return hash.digest("hex");
}
