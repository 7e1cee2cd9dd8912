/**
 * The two images a sandbox pod on the FAKE Kubernetes node needs, made here and `docker import`ed
 * into the private daemon (these machines have no registry):
 *
 * - the supervisor image: busybox (the init container's `sh -c 'cp -a …'`) plus `/opt/openshell/bin`
 *   as `stage-supervisor-bin.sh` stages it for the gateway image, so the init container the driver
 *   generates copies the real supervisor into the pod;
 * - a Debian sandbox image: bookworm minbase with bash and openssh-sftp-server and the `sandbox` user
 *   (10001, home /sandbox), what the supervisor expects of an image. Built by mmdebstrap once (about
 *   a minute, needs root and the Debian mirror) and cached by its recipe as
 *   `~/.cache/openshell-test/k8s-sandbox-rootfs-<hash>.tar`.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import type { DockerDaemon } from "../docker-harness.js";
import { findRepoRoot } from "../process.js";
import { importBusyboxImage } from "./busybox-image.js";

const STAGE_SUPERVISOR = join(
  findRepoRoot(import.meta.dirname),
  "packages",
  "sandbox-supervisor",
  "staging",
  "stage-supervisor-bin.sh",
);

const SANDBOX_RECIPE = {
  suite: "bookworm",
  sources: [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
  ],
  packages: ["bash", "coreutils", "openssh-sftp-server"],
  hooks: [
    'chroot "$1" groupadd -g 10001 sandbox',
    'chroot "$1" useradd -u 10001 -g 10001 -d /sandbox -M -s /bin/bash -c "openshell sandbox" sandbox',
    'mkdir -p "$1/sandbox" && chown 10001:10001 "$1/sandbox"',
  ],
} as const;

/**
 * Imports the supervisor image as `tag`: the supervisor staged from this checkout's build (the
 * supervisor bundle must be built), on Node `nodeBin` (24 or newer).
 */
export async function importSupervisorImage(
  daemon: Pick<DockerDaemon, "docker">,
  tag: string,
  nodeBin: string = process.execPath,
): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "osk8s-supimg-"));
  try {
    const bin = join(work, "bin");
    stageSupervisorBin(bin, nodeBin);
    await daemon.docker(["image", "rm", "-f", tag], { allowFailure: true });
    await importBusyboxImage(daemon, tag, {}, { "/opt/openshell/bin": bin });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Stages the self-contained supervisor directory (what sandbox containers mount at
 * /opt/openshell/bin) into `out` from this checkout's build, on Node `nodeBin` (24 or newer).
 */
export function stageSupervisorBin(out: string, nodeBin: string = process.execPath): void {
  const staged = spawnSync("bash", [STAGE_SUPERVISOR, out], {
    encoding: "utf8",
    env: { ...process.env, OPENSHELL_NODE_BIN: nodeBin },
  });
  if (staged.status !== 0) throw new Error(`stage-supervisor-bin.sh failed: ${staged.stderr}`);
}

/** Imports the Debian sandbox image; returns its tag (`openshell-test/k8s-sandbox:<recipe hash>`). */
export async function importDebianSandboxImage(daemon: Pick<DockerDaemon, "docker">): Promise<string> {
  const hash = createHash("sha256").update(JSON.stringify(SANDBOX_RECIPE)).digest("hex").slice(0, 16);
  const tag = `openshell-test/k8s-sandbox:${hash}`;
  if ((await daemon.docker(["image", "inspect", tag], { allowFailure: true })).code === 0) return tag;
  const cacheDir = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "openshell-test");
  const tarball = join(cacheDir, `k8s-sandbox-rootfs-${hash}.tar`);
  if (!existsSync(tarball)) {
    mkdirSync(cacheDir, { recursive: true });
    const partial = `${tarball}.${process.pid}.partial`;
    const built = spawnSync(
      "mmdebstrap",
      [
        "-q",
        "--variant=minbase",
        `--include=${SANDBOX_RECIPE.packages.join(",")}`,
        '--aptopt=Acquire::Languages "none"',
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        ...SANDBOX_RECIPE.hooks.map((hook) => `--customize-hook=${hook}`),
        "--format=tar",
        SANDBOX_RECIPE.suite,
        partial,
        ...SANDBOX_RECIPE.sources,
      ],
      { encoding: "utf8", timeout: 600_000 },
    );
    if (built.status !== 0) {
      rmSync(partial, { force: true });
      throw new Error(
        `mmdebstrap failed (needs root, apt-get install mmdebstrap, and the Debian mirror): ${built.stderr || built.error}`,
      );
    }
    renameSync(partial, tarball);
  }
  await daemon.docker(
    [
      "import",
      "--change",
      "ENV PATH=/usr/local/bin:/usr/bin:/bin",
      "--change",
      'CMD ["/bin/bash"]',
      tarball,
      tag,
    ],
    { timeoutMs: 300_000 },
  );
  return tag;
}
