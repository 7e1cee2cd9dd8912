import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pidsOf } from "@openshell/testing/process";
import { describe, expect, it } from "vitest";

const RUNTIME = join(import.meta.dirname, "..", "runtime");
/** A cold staging (kernel download, mmdebstrap, image) takes ~40 s here; leave room for a busy host. */
const STAGE_TIMEOUT_MS = 300_000;

function bash(script: string, args: string[], timeoutMs: number) {
  const started = Date.now();
  const result = spawnSync("bash", [join(RUNTIME, script), ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
    killSignal: "SIGTERM", // the scripts' traps stop QEMU and remove their temp dirs
  });
  return { ...result, ms: Date.now() - started, output: `${result.stdout}${result.stderr}` };
}

describe("VM runtime (stage-vm-runtime.sh, openshell-vm-init, boot-check.sh)", () => {
  it(
    "stages once, then answers from its cache in well under a second",
    () => {
      const first = bash("stage-vm-runtime.sh", [], STAGE_TIMEOUT_MS);
      expect(first.status, first.output).toBe(0);
      const dir = first.stdout.trim();
      for (const file of ["vmlinuz", "initrd.img", "rootfs.qcow2", "manifest.json"]) {
        expect(existsSync(join(dir, file)), `${dir}/${file}`).toBe(true);
      }
      const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Record<string, string>;
      expect(manifest.kernel).toMatch(/-cloud-amd64$/);
      expect(manifest.node).toMatch(/^v24\./);
      expect(manifest.supervisorSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(manifest.createdAt).toBeTruthy();

      const again = bash("stage-vm-runtime.sh", [], 30_000);
      expect(again.status, again.output).toBe(0);
      expect(again.stdout.trim()).toBe(dir);
      expect(again.stderr).toBe("");
      expect(again.ms).toBeLessThan(1_500);
    },
    STAGE_TIMEOUT_MS + 60_000,
  );

  it(
    "boots a sandbox VM that passes its self-test, powers off on the ACPI button and keeps its disk",
    () => {
      const run = bash("boot-check.sh", ["--graceful"], STAGE_TIMEOUT_MS);
      expect(run.status, run.output).toBe(0);
      expect(run.output).toContain("OPENSHELL-VM-INIT selftest ok");
      expect(run.output).toContain("env value round trip ok");
      // The staging warm-up boot filled the supervisor's V8 compile cache in the image.
      expect(run.output).toMatch(/selftest compile cache: [1-9]\d* files/);
      // What agents expect, first on the sandbox user's PATH in a login shell (issue 10 item 12).
      expect(run.output).toContain(
        "selftest tools: paths=/sandbox/.venv/bin/python /sandbox/.venv/bin/pip /usr/local/bin/node /usr/bin/rsync ",
      );
      expect(run.output).toMatch(
        /python=3\.\d+\.\d+ prefix=\/sandbox\/\.venv cloudpickle=\d[\d.]* ensurepip=\d/,
      );
      expect(run.output).toMatch(
        /pip=pip \d[\d.]* from \S+ \(python 3\.\d+\) node=v24\.\d+\.\d+ rsync=rsync +version \d/,
      );
      // Landlock is an active LSM in the guest kernel and the launcher enforces it (issue 13).
      expect(run.output).toMatch(/selftest confinement: lsm=\S*\blandlock\b/);
      expect(run.output).toMatch(
        /"event":"landlock","status":"prepared","abi":"\d+","rules":"1","skipped":"0"/,
      );
      expect(run.output).toContain('{"event":"landlock","status":"enforced"}');
      // Of the host's loopback only the gateway's port (boot-check's endpoint is port 1; item 8).
      expect(run.output).toContain("host firewall: host alias 10.0.2.2 open on the gateway port 1 only");
      expect(run.output).toContain("elements = { 10.0.2.2 . 1 }");
      expect(run.output).toContain("SSH:LISTEN");
      expect(run.output).toMatch(/graceful poweroff: QEMU exited [\d.]+ s after system_powerdown/);
      expect(run.output).toContain("supervisor exited status=0");
      expect(run.output).toContain("second boot saw the first boot's write on the overlay (boots=2)");
      // Nothing left behind: the temp dir is gone and no QEMU still uses it.
      const tmp = /\/tmp\/openshell-vm-bootcheck\.[A-Za-z0-9]+/.exec(run.output)?.[0];
      expect(tmp, run.output).toBeTruthy();
      expect(existsSync(tmp!)).toBe(false);
      expect(pidsOf(/^qemu-system/, tmp!)).toEqual([]);
    },
    STAGE_TIMEOUT_MS + 120_000,
  );
});
