import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { PolicyState } from "../src/policy/policy-state.js";
import {
  confinedTestPolicyState,
  NOBODY_UID,
  runTool,
  type SshFixture,
  sshOptions,
  startFixture,
} from "./ssh-harness.js";

/**
 * The SSH server with the native launcher (as the supervisor runs it): shells, commands on a PTY
 * and on pipes, and sftp-server are confined by the installed policy; without a policy or a
 * launcher they are refused, never started unconfined. Host kernel, as root.
 */
const isRoot = process.getuid?.() === 0;
const BUILD = new URL("../native/build.sh", import.meta.url).pathname;
let launcherPath = "";
let landlock = false;
const fixtures: SshFixture[] = [];

async function confinedFixture(
  state = confinedTestPolicyState(),
  launcher = launcherPath,
): Promise<SshFixture> {
  const f = await startFixture({
    confinement: { launcherPath: launcher, policyState: state, policyWaitMs: 500 },
  });
  fixtures.push(f);
  // Outside the workdir: root-owned, world-readable (so only Landlock keeps nobody out).
  writeFileSync(join(f.root, "secret"), "secret\n", { mode: 0o644 });
  mkdirSync(join(f.root, "open"), { mode: 0o777 });
  execFileSync("chmod", ["0777", join(f.root, "open")]);
  return f;
}

const ssh = (f: SshFixture, args: string[], input?: string) =>
  runTool("ssh", [...sshOptions(f.socketPath), ...args], { input, timeoutMs: 20_000 });

describe.skipIf(!isRoot)("SSH children through the native launcher", () => {
  beforeAll(() => {
    launcherPath = execFileSync("bash", [BUILD], { encoding: "utf8" }).trim();
    const probe = spawnSync("/usr/bin/python3", [
      "-c",
      "import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.syscall(444, None, 0, 1))",
    ]);
    landlock = Number(probe.stdout.toString().trim()) > 0;
    console.info(
      landlock ? "host kernel has Landlock" : "host kernel has no Landlock: its checks are skipped",
    );
  });
  afterEach(async () => {
    for (const f of fixtures.splice(0)) {
      await f.server.close();
      rmSync(f.root, { recursive: true, force: true });
    }
  });

  it("confines commands on pipes and on a PTY: the user, no capabilities, seccomp, Landlock", async () => {
    const f = await confinedFixture();
    const script = `id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '; unshare -U true 2>/dev/null || echo unshare-denied; { echo x > ${f.root}/open/file; } 2>/dev/null || echo write-denied; cat ${f.root}/secret 2>/dev/null || echo read-denied; echo ok > in-workdir && cat in-workdir`;
    const expected = [
      String(NOBODY_UID),
      "CapEff: 0000000000000000",
      "CapBnd: 0000000000000000",
      "NoNewPrivs: 1",
      "Seccomp: 2",
      "unshare-denied",
      ...(landlock ? ["write-denied", "read-denied"] : ["secret"]),
      "ok",
    ];
    const piped = await ssh(f, ["sandbox", script]);
    expect(piped.stderr).toBe("");
    expect(piped.stdout.trim().split("\n")).toEqual(expected);
    const tty = await ssh(f, ["-tt", "sandbox", script]);
    expect(tty.code).toBe(0);
    expect(tty.stdout.trim().split("\r\n")).toEqual(expected);
    expect(existsSync(join(f.root, "open", "file"))).toBe(!landlock);
    // The confinement was checked once, and both children say they were confined.
    const ready = f.logs.filter((line) => /^CONFIG:ENABLED .*child confinement ready/.test(String(line.msg)));
    expect(ready).toHaveLength(1);
    const launches = f.logs.filter((line) => String(line.msg).startsWith("PROC:LAUNCH"));
    expect(launches.map((line) => [line.pty, line.confined])).toEqual([
      [false, true],
      [true, true],
    ]);
  });

  it("confines sftp-server: uploads land in the workdir, not outside read_write", async () => {
    const f = await confinedFixture();
    const local = join(f.root, "local.txt");
    writeFileSync(local, "payload\n");
    const batch = join(f.root, "batch");
    writeFileSync(batch, `put ${local} up.txt\n-put ${local} ${f.root}/open/up.txt\n`);
    const sftp = await runTool("sftp", [...sshOptions(f.socketPath), "-b", batch, "sandbox"], {
      timeoutMs: 20_000,
    });
    expect(sftp.code).toBe(0);
    expect(readFileSync(join(f.workdir, "up.txt"), "utf8")).toBe("payload\n");
    expect(existsSync(join(f.root, "open", "up.txt"))).toBe(!landlock);
  });

  it("refuses children (never unconfined) without a policy or without a launcher, and says why", async () => {
    const noPolicy = await confinedFixture(new PolicyState());
    const waited = await ssh(noPolicy, ["sandbox", "echo ran"]);
    expect(waited.stdout).toBe("");
    expect(waited.code).toBe(127);
    expect(waited.stderr).toMatch(/refusing to start: no sandbox policy loaded within 0.5 s/);

    const noLauncher = await confinedFixture(confinedTestPolicyState(), "/nonexistent/openshell-launch");
    const refused = await ssh(noLauncher, ["sandbox", "echo ran"]);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/confinement launcher \/nonexistent\/openshell-launch is not executable/);
  });
});
