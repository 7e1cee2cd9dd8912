import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The native launcher itself, on the host, as root: identity, capabilities, rlimits, no_new_privs,
 * the seccomp blocklist (each rule shown against a call an unprivileged user could otherwise make),
 * Landlock when the host kernel has it (detected and said), fail-closed exits.
 */
const NATIVE_DIR = new URL("../native/", import.meta.url).pathname;
const NOBODY = 65534;
const PYTHON = "/usr/bin/python3";
const isRoot = process.getuid?.() === 0;

let launcher = "";
let root = "";
let rwDir = "";
let landlockAbi = 0;

/** Read access for what programs need to run, full access for `rwDir` and /dev/null. */
const baseArgs = (): string[] => [
  "--uid",
  String(NOBODY),
  "--gid",
  String(NOBODY),
  ...["/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/dev/urandom"].flatMap((path) => ["--ro", path]),
  ...[rwDir, "/dev/null"].flatMap((path) => ["--rw", path]),
  "--workdir",
  rwDir,
];

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  report: Array<Record<string, string>>;
}

/** Runs `launcher ARGS -- PROGRAM...` with its report on fd 3. */
function launch(args: string[], program: string[], extraFds = 0): Run {
  const result = spawnSync(launcher, ["--report-fd", "3", ...args, "--", ...program], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe", "pipe", ...Array.from({ length: extraFds }, () => "pipe" as const)],
    env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
    timeout: 20_000,
  });
  const reportText = (result.output[3] as unknown as string | null) ?? "";
  return {
    status: result.status,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
    report: reportText
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, string>),
  };
}

const python = (code: string): string[] => [PYTHON, "-c", code];
/** A raw syscall from Python: prints "ok" or the errno name. */
const syscall = (setup: string, call: string): string[] =>
  python(
    `import ctypes, errno, os, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n${setup}\nr = ${call}\nprint("ok" if r >= 0 else errno.errorcode[ctypes.get_errno()])`,
  );

describe.skipIf(!isRoot)("openshell-launch (native launcher, host kernel)", () => {
  beforeAll(() => {
    launcher = execFileSync("bash", [join(NATIVE_DIR, "build.sh")], { encoding: "utf8" }).trim();
    root = mkdtempSync(join(tmpdir(), "openshell-launch-"));
    chmodSync(root, 0o711); // nobody may pass through (mkdtemp makes it 0700)
    rwDir = join(root, "rw");
    mkdirSync(rwDir);
    chownSync(rwDir, NOBODY, NOBODY);
    writeFileSync(join(root, "secret"), "secret\n", { mode: 0o644 });
    const probe = spawnSync(PYTHON, [
      "-c",
      "import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.syscall(444, None, 0, 1))",
    ]);
    landlockAbi = Number(probe.stdout.toString().trim()) || 0;
    // Said in the test output: the Landlock checks below only run where the kernel enforces it.
    console.info(
      landlockAbi > 0
        ? `host kernel: Landlock ABI ${landlockAbi}`
        : "host kernel: no Landlock; its enforcement checks are skipped",
    );
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("drops to the user with no capabilities, no_new_privs, seccomp and upstream's rlimits", () => {
    const run = launch(baseArgs(), [
      "/bin/bash",
      "-c",
      "id -u; id -g; id -G; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; ulimit -c; ulimit -Hu; pwd",
    ]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines.slice(0, 3)).toEqual([String(NOBODY), String(NOBODY), String(NOBODY)]);
    for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
      expect(run.stdout).toMatch(new RegExp(`${set}:\\s+0000000000000000`));
    }
    expect(run.stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(run.stdout).toMatch(/Seccomp:\s+2/);
    expect(run.stdout).toMatch(/Seccomp_filters:\s+2/);
    expect(lines.slice(-3)).toEqual(["0", "512", rwDir]);
  });

  it("blocks upstream's syscalls with EPERM, each one an unprivileged user could otherwise make", () => {
    const cases: Array<[string, string[]]> = [
      ["ptrace", syscall("", "libc.ptrace(0, 0, 0, 0)")], // PTRACE_TRACEME
      ["memfd_create", syscall("", 'libc.memfd_create(b"x", 0)')],
      ["AF_NETLINK", syscall("", "libc.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)")],
      ["AF_PACKET", syscall("", "libc.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)")],
      ["AF_VSOCK", syscall("", "libc.socket(40, socket.SOCK_STREAM, 0)")],
      ["unshare(CLONE_NEWUSER)", syscall("", "libc.unshare(0x10000000)")],
      ["pidfd_open", syscall("", "libc.syscall(434, os.getpid(), 0)")],
      ["io_uring_setup", syscall("p = ctypes.create_string_buffer(120)", "libc.syscall(425, 4, p)")],
      ["userfaultfd", syscall("", "libc.syscall(323, 0)")],
      [
        "execveat(AT_EMPTY_PATH)",
        syscall('fd = os.open("/bin/true", os.O_RDONLY)', 'libc.syscall(322, fd, b"", None, None, 0x1000)'),
      ],
      ["seccomp(SET_MODE_FILTER)", syscall("", "libc.syscall(317, 1, 0, None)")],
      ["setns", syscall('fd = os.open("/proc/self/ns/net", os.O_RDONLY)', "libc.setns(fd, 0)")],
      ["mount", syscall("", 'libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)')],
    ];
    for (const [name, program] of cases) {
      const run = launch(baseArgs(), program);
      expect({ name, out: run.stdout.trim(), err: run.stderr }).toEqual({ name, out: "EPERM", err: "" });
    }
    // AF_INET stays allowed (the proxy needs it), and so does a plain clone.
    const inet = launch(baseArgs(), syscall("", "libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)"));
    expect(inet.stdout.trim()).toBe("ok");
  });

  it("makes clone3 return ENOSYS so glibc falls back to clone: bash, python3 and unshare -U behave", () => {
    const clone3 = launch(
      baseArgs(),
      syscall("p = ctypes.create_string_buffer(88)", "libc.syscall(435, p, 88)"),
    );
    expect(clone3.stdout.trim()).toBe("ENOSYS");
    const fork = launch(baseArgs(), [
      "/bin/bash",
      "-c",
      `echo a | cat | tr a b; ${PYTHON} -c 'import subprocess; print(subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip())'`,
    ]);
    expect(fork.stdout).toBe("b\nsub\n");
    const unshare = launch(baseArgs(), ["/usr/bin/unshare", "-U", "true"]);
    expect(unshare.status).not.toBe(0);
    expect(unshare.stderr).toMatch(/Operation not permitted/);
    // ptrace through a real tool, too.
    const strace = launch(baseArgs(), ["/usr/bin/strace", "-o", "/dev/null", "/bin/true"]);
    expect(strace.status).not.toBe(0);
    expect(strace.stderr).toMatch(/Operation not permitted/);
  });

  it.skipIf(process.arch !== "x64")(
    "kills a process that makes a syscall of another architecture (i386 int 0x80)",
    () => {
      const source = join(root, "int80.c");
      const binary = join(rwDir, "int80"); // executable under Landlock (read_write)
      // getpid through the i386 entry: its numbers differ, so it must not get past the filter.
      writeFileSync(
        source,
        'int main(void){long r;__asm__ volatile("int $0x80":"=a"(r):"a"(20L));return r>0?0:1;}\n',
      );
      execFileSync("/usr/bin/gcc", ["-static", "-O0", "-o", binary, source]);
      expect(spawnSync(binary).status).toBe(0); // unconfined it works
      const run = launch(baseArgs(), [binary]);
      expect(run.signal).toBe("SIGSYS");
    },
  );

  it("ends the program when the process that started it is killed (no workload outlives its supervisor)", async () => {
    // bash stands in for the supervisor: it starts the launcher in the background and is SIGKILLed.
    const quoted = [launcher, ...baseArgs(), "--", "sleep", "1000"].map((a) => `'${a}'`).join(" ");
    const parent = spawn("bash", ["-c", `${quoted} & echo $!; wait`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const pid = Number(
      await new Promise<string>((resolve) => parent.stdout.once("data", (d) => resolve(String(d)))),
    );
    const running = () =>
      existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
    try {
      // The background subshell's cmdline names sleep too: wait for the exec itself.
      const cmdline = () => readFileSync(`/proc/${pid}/cmdline`, "utf8");
      for (let i = 0; i < 100 && !cmdline().startsWith("sleep\u0000"); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(cmdline()).toBe("sleep\u00001000\u0000");
      expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(new RegExp(`^Uid:\\s+${NOBODY}\\s`, "m"));
      parent.kill("SIGKILL");
      for (let i = 0; i < 100 && running(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(running()).toBe(false);
    } finally {
      if (running()) process.kill(pid, "SIGKILL");
    }
  });

  it("keeps inherited descriptors out of the program", () => {
    const run = launch(baseArgs(), ["/bin/bash", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"], 3);
    // 0-2, plus the fd ls itself opened for the directory.
    expect(
      run.stdout
        .trim()
        .split(" ")
        .map(Number)
        .filter((fd) => fd > 3),
    ).toEqual([]);
  });

  it("enters a network namespace given by path", () => {
    const name = `oslaunch${process.pid}`;
    execFileSync("/usr/sbin/ip", ["netns", "add", name]);
    try {
      const run = launch(["--netns", `/run/netns/${name}`, ...baseArgs()], ["/bin/cat", "/proc/net/dev"]);
      expect(run.status).toBe(0);
      const interfaces = run.stdout
        .split("\n")
        .slice(2)
        .filter(Boolean)
        .map((line) => line.split(":")[0]?.trim());
      expect(interfaces).toEqual(["lo"]);
    } finally {
      execFileSync("/usr/sbin/ip", ["netns", "del", name]);
    }
  });

  it("fails closed (126, one line on stderr) on bad identity, a missing netns and unknown options", () => {
    for (const [args, reason] of [
      [["--uid", "0", "--gid", "0"], /children never run as root/],
      [["--uid", String(NOBODY)], /--uid and --gid are required/],
      [["--netns", "/nonexistent/ns", ...baseArgs()], /netns: cannot open \/nonexistent\/ns/],
      [["--bogus", "x", ...baseArgs()], /unknown option '--bogus'/],
      [[...baseArgs(), "--landlock", "maybe"], /--landlock 'maybe'/],
    ] as const) {
      const run = launch([...args], ["/bin/true"]);
      expect(run.status).toBe(126);
      expect(run.stderr).toMatch(reason);
      expect(run.stderr).toMatch(/\(refusing to run the program unconfined\)\n$/);
    }
    const missing = launch(baseArgs(), ["/nonexistent/program"]);
    expect(missing.status).toBe(127);
  });

  it("--check confines itself and reports ready without running a program", () => {
    const run = launch(["--check", ...baseArgs()], []);
    expect(run.status).toBe(0);
    expect(run.report.at(-1)).toEqual({ event: "ready" });
  });

  it("Landlock (when the host kernel has it): writes outside read_write and reads of unlisted paths fail with EACCES", () => {
    if (landlockAbi <= 0) {
      const run = launch(baseArgs(), ["/bin/true"]);
      expect(run.report).toContainEqual(
        expect.objectContaining({ event: "finding", finding: "landlock-unavailable" }),
      );
      return;
    }
    const run = launch(
      [...baseArgs(), "--ro", "/nonexistent-ro"],
      [
        "/bin/bash",
        "-c",
        `echo ok > ${rwDir}/file && cat ${rwDir}/file; echo x > ${root}/outside; cat ${root}/secret; ls /root; echo bye`,
      ],
    );
    expect(run.stdout).toBe("ok\nbye\n");
    expect(run.stderr).toMatch(new RegExp(`${root}/outside: Permission denied`));
    expect(run.stderr).toMatch(new RegExp(`${root}/secret: Permission denied`));
    expect(run.stderr).toMatch(/cannot open directory '\/root': Permission denied/);
    expect(existsSync(join(root, "outside"))).toBe(false);
    expect(run.report).toContainEqual({
      event: "path-skipped",
      path: "/nonexistent-ro",
      access: "read_only",
      reason: "No such file or directory",
    });
    expect(run.report).toContainEqual(
      expect.objectContaining({ event: "landlock", status: "prepared", abi: String(landlockAbi) }),
    );
    expect(run.report).toContainEqual({ event: "landlock", status: "enforced" });
    // hard_requirement: a missing path is fatal.
    const hard = launch(
      [...baseArgs(), "--landlock", "hard_requirement", "--ro", "/nonexistent-ro"],
      ["/bin/true"],
    );
    expect(hard.status).toBe(126);
    expect(hard.stderr).toMatch(/read_only path \/nonexistent-ro: No such file or directory/);
    // off: no ruleset at all.
    const off = launch([...baseArgs(), "--landlock", "off"], ["/bin/cat", join(root, "secret")]);
    expect(off.stdout).toBe("secret\n");
    expect(readFileSync(join(root, "secret"), "utf8")).toBe("secret\n");
  });
});
