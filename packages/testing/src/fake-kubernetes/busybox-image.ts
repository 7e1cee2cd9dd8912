/**
 * A tiny image for the fake Kubernetes node agent's tests: the host's static busybox
 * (`apt-get install busybox-static`) with one symlink per applet, `/etc/passwd` with root and
 * `sandbox` (10001), and optional extra files, made with `docker import` (no registry needed:
 * these machines have none).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { DockerDaemon } from "../docker-harness.js";

const BUSYBOX = "/bin/busybox";

/**
 * Imports `tag` into `daemon` unless it is there; `files` maps absolute paths in the image to
 * content, `directories` maps absolute paths in the image to host directories copied there.
 */
export async function importBusyboxImage(
  daemon: Pick<DockerDaemon, "docker">,
  tag: string,
  files: Record<string, string> = {},
  directories: Record<string, string> = {},
): Promise<void> {
  const present = await daemon.docker(["image", "inspect", tag], { allowFailure: true });
  if (present.code === 0) return;
  const applets = spawnSync(BUSYBOX, ["--list"], { encoding: "utf8" });
  if (applets.status !== 0)
    throw new Error(`${BUSYBOX} --list failed: install busybox-static (apt-get install busybox-static)`);
  const root = mkdtempSync(join(tmpdir(), "fake-busybox-"));
  try {
    for (const dir of ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "run"]) mkdirSync(join(root, dir));
    chmodSync(join(root, "tmp"), 0o1777);
    const copied = spawnSync("cp", [BUSYBOX, join(root, "bin", "busybox")]);
    if (copied.status !== 0) throw new Error(`cannot copy ${BUSYBOX}`);
    for (const applet of applets.stdout.split("\n").filter(Boolean)) {
      if (applet !== "busybox") symlinkSync("busybox", join(root, "bin", applet));
    }
    writeFileSync(
      join(root, "etc", "passwd"),
      "root:x:0:0:root:/root:/bin/sh\nsandbox:x:10001:10001::/sandbox:/bin/sh\n",
    );
    writeFileSync(join(root, "etc", "group"), "root:x:0:\nsandbox:x:10001:\n");
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    for (const [path, source] of Object.entries(directories)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      const copied = spawnSync("cp", ["-a", source, join(root, path)]);
      if (copied.status !== 0) throw new Error(`cannot copy ${source}: ${copied.stderr.toString()}`);
    }
    const tar = spawnSync("tar", ["-C", root, "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."], {
      maxBuffer: 1024 * 1024 * 1024,
    });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr.toString()}`);
    await daemon.docker(["import", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]', "-", tag], {
      input: tar.stdout,
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
