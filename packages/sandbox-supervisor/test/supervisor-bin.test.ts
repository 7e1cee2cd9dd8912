import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/**
 * The supervisor's self-contained directory for containers and pods (staging/stage-supervisor-bin.sh), run
 * in an EMPTY root (chroot) holding nothing but that directory at /opt/openshell/bin: no /bin/sh,
 * no libc, no Node, no iproute2 or nftables of an image's. What works there works in any image.
 */
const STAGE = join(import.meta.dirname, "..", "staging", "stage-supervisor-bin.sh");
const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const missing = ["patchelf", "gcc", "ip", "nft", "chroot"].filter((tool) => !has(tool));
const isRoot = process.getuid?.() === 0;
const skip = !isRoot || missing.length > 0;
if (skip) {
  console.warn(
    `supervisor-bin.test.ts skipped: ${isRoot ? "" : "needs root (chroot); "}${missing.length > 0 ? `missing ${missing.join(", ")} (apt-get install patchelf gcc libc6-dev iproute2 nftables)` : ""}`,
  );
}

const work = mkdtempSync(join(tmpdir(), "ossup-bin-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const CHROOT = spawnSync("sh", ["-c", "command -v chroot"], { encoding: "utf8" }).stdout.trim();

/** Runs `argv` inside `root` with a PATH that finds nothing (what the entry adds is all there is). */
function inRoot(root: string, argv: string[]) {
  return spawnSync(CHROOT, [root, ...argv], { encoding: "utf8", env: { PATH: "/nonexistent" } });
}

describe.skipIf(skip)("stage-supervisor-bin.sh", () => {
  it("stages a supervisor that runs in an empty root: Node with its native modules, the entry, the launcher, ip and nft", () => {
    const out = join(work, "bin");
    const staged = spawnSync("bash", [STAGE, out], {
      encoding: "utf8",
      env: { ...process.env, OPENSHELL_NODE_BIN: process.execPath },
    });
    expect(staged.status, staged.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      "lib",
      "node",
      "node_modules",
      "openshell-launch",
      "openshell-sandbox",
      "openshell-sandbox.js",
      "tools",
    ]);

    const root = join(work, "root");
    mkdirSync(join(root, "opt", "openshell"), { recursive: true });
    cpSync(out, join(root, "opt", "openshell", "bin"), { recursive: true, verbatimSymlinks: true });
    expect(readdirSync(root)).toEqual(["opt"]);
    expect(existsSync(join(root, "bin", "sh"))).toBe(false);

    const node = inRoot(root, [
      "/opt/openshell/bin/node",
      "-e",
      'require("/opt/openshell/bin/node_modules/ssh2"); require("/opt/openshell/bin/node_modules/node-pty"); console.log(process.execPath)',
    ]);
    expect(node.status, node.stderr).toBe(0);
    // Children the supervisor starts with process.execPath (ip netns exec ... node) get this Node.
    expect(node.stdout.trim()).toBe("/opt/openshell/bin/node");

    const supervisor = inRoot(root, ["/opt/openshell/bin/openshell-sandbox", "--version"]);
    expect(supervisor.status, supervisor.stderr).toBe(0);
    expect(supervisor.stdout).toMatch(/^openshell-sandbox \d+\.\d+\.\d+/);

    const ip = inRoot(root, ["/opt/openshell/bin/tools/ip", "-V"]);
    expect(ip.status, ip.stderr).toBe(0);
    const nft = inRoot(root, ["/opt/openshell/bin/tools/nft", "--version"]);
    expect(nft.status, nft.stderr).toBe(0);
    const launcher = inRoot(root, ["/opt/openshell/bin/openshell-launch", "--help"]);
    expect(launcher.stdout + launcher.stderr).toContain("usage: openshell-launch");
  });
});
