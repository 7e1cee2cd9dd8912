import { createHash, randomUUID } from "node:crypto";
import {
  cpSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";

/**
 * The supervisor directory every container mounts read-only at /opt/openshell/bin: a copy of the
 * staged one (`stage-supervisor-bin.sh`: static entry, Node, ip, nft, native modules, launcher)
 * under `<state>/supervisor/<content hash>/`. Versioned by content, so a re-staged or upgraded
 * supervisor never changes what running containers have mounted; a new container gets the current
 * one. Copies whose hash is not the current one are kept (containers may still mount them).
 */
export function prepareSupervisorDir(staged: string, stateDir: string): string {
  if (!existsSync(join(staged, "openshell-sandbox"))) {
    throw new OpenShellError(
      "failed_precondition",
      `--supervisor-bin '${staged}' holds no openshell-sandbox: stage it with packages/sandbox-supervisor/staging/stage-supervisor-bin.sh DIR (the gateway image has it in /opt/openshell/bin)`,
    );
  }
  const hash = createHash("sha256");
  hashTree(staged, "", hash);
  const key = hash.digest("hex").slice(0, 16);
  const target = join(stateDir, "supervisor", key);
  if (existsSync(target)) return target;
  const partial = `${target}.${process.pid}.partial`;
  rmSync(partial, { recursive: true, force: true });
  cpSync(staged, partial, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  renameSync(partial, target);
  return target;
}

function hashTree(root: string, relative: string, hash: ReturnType<typeof createHash>): void {
  for (const name of readdirSync(join(root, relative)).sort()) {
    const path = join(relative, name);
    const full = join(root, path);
    const stat = lstatSync(full);
    hash.update(`${path}\0${stat.mode}\0`);
    if (stat.isSymbolicLink()) hash.update(`-> ${readlinkSync(full)}\0`);
    else if (stat.isDirectory()) hashTree(root, path, hash);
    else hash.update(readFileSync(full));
  }
}

/**
 * This driver's instance id, made once per state dir (`<state>/instance-id`): the label that tells
 * its containers from those of another gateway on the same daemon.
 */
export function driverInstanceId(stateDir: string): string {
  const file = join(stateDir, "instance-id");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const id = randomUUID();
  writeFileSync(file, `${id}\n`, { mode: 0o600, flag: "wx" });
  return id;
}
