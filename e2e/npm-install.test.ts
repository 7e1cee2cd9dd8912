import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import { findRepoRoot, freePort, isAlive, pidsOf, waitFor } from "@openshell/testing/process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * `npm install -g openshell` on a machine with no clone: every package packed
 * (scripts/pack-release.sh), published to a private registry (verdaccio on 127.0.0.1), installed
 * with the npm client into a fresh prefix, and driven with a PATH that holds that prefix, Node and
 * the system's directories only, from a directory outside the repository.
 */

const REPO = findRepoRoot(import.meta.dirname);
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
const VERDACCIO_VERSION = "6.10.4";
const TEST_CACHE = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "openshell-test");
/** The staged VM runtime: the set-up's (same content key as the installed packages), as in cli-harness. */
const RUNTIME_DIR =
  process.env.OPENSHELL_VM_RUNTIME_DIR ??
  join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "openshell", "vm-runtime");
const NODE_DIR = dirname(dirname(process.execPath));
/** npm install runs install scripts (native modules), staging may build a guest image: minutes. */
const INSTALL_TIMEOUT_MS = 600_000;
const START_TIMEOUT_MS = 1_200_000;
const isRoot = process.getuid?.() === 0;
const MANAGED = "label=openshell.ai/managed-by=openshell";
const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (async: verdaccio, our child, keeps answering meanwhile). */
function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

function expectOk(result: Result, what: string): Result {
  if (result.code !== 0)
    throw new Error(
      `${what} exited ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  return result;
}

/** verdaccio, installed once per version into the test cache (npm needs the override to resolve it here). */
async function ensureVerdaccio(): Promise<string> {
  const dir = join(TEST_CACHE, `verdaccio-${VERDACCIO_VERSION}`);
  const bin = join(dir, "node_modules", "verdaccio", "bin", "verdaccio");
  if (existsSync(bin)) return bin;
  mkdirSync(TEST_CACHE, { recursive: true });
  const tmp = mkdtempSync(join(TEST_CACHE, ".verdaccio-"));
  try {
    // This machine's registry lacks node-fetch's `cjs` dist-tag, which a verdaccio dependency names.
    writeFileSync(
      join(tmp, "package.json"),
      JSON.stringify({ private: true, overrides: { "node-fetch@cjs": "2.7.0" } }),
    );
    expectOk(
      await run("npm", ["install", "--no-audit", "--no-fund", `verdaccio@${VERDACCIO_VERSION}`], {
        cwd: tmp,
        timeoutMs: INSTALL_TIMEOUT_MS,
      }),
      "npm install verdaccio",
    );
    try {
      renameSync(tmp, dir);
    } catch (error) {
      if (!existsSync(bin)) throw error; // another run installed it meanwhile
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

/**
 * A sandbox image in `daemon`: the one a Docker test imported from the VM runtime, else that
 * runtime's root filesystem imported here.
 */
async function localSandboxImage(daemon: DockerDaemon): Promise<string> {
  const images = await daemon.docker(["images", "--format", "{{.Repository}}:{{.Tag}}", "openshell/sandbox"]);
  const present = images.stdout.split("\n").find(Boolean);
  if (present) return present;
  const tag = "openshell/sandbox:npm-e2e";
  await daemon.docker(["import", join(RUNTIME_DIR, "current", "rootfs.tar"), tag]);
  return tag;
}

describe("npm install -g openshell from a registry, then a sandbox (no clone on PATH)", () => {
  const root = mkdtempSync("/tmp/osnpm-");
  const tarballs = join(root, "tarballs");
  const npmrc = join(root, "npmrc");
  const started: number[] = [];
  let registry = "";
  let verdaccioPid: number | undefined;
  let daemon: DockerDaemon | undefined;
  /** The plain install (u1), shared by the tests that need no install flags of their own. */
  let plainInstall: Promise<{ prefix: string; home: string }> | undefined;
  const installPlain = () => {
    plainInstall ??= install("u1", []);
    return plainInstall;
  };
  /** The private dockerd of the Docker tests, started by the first that needs it. */
  let dockerStart: Promise<DockerDaemon> | undefined;
  const privateDocker = () => {
    dockerStart ??= startDockerDaemon({
      runDir: "/run/openshell-npm-docker",
      dataRoot: "/var/lib/openshell-npm-docker",
      addressPool: "base=10.219.0.0/16,size=24",
    }).then((started) => {
      daemon = started;
      return started;
    });
    return dockerStart;
  };

  /** A user of the installed prefix: PATH = its bin, Node, the system; own XDG dirs; cwd outside the repo. */
  function userEnv(prefix: string, home: string): NodeJS.ProcessEnv {
    return {
      HOME: process.env.HOME,
      PATH: [join(prefix, "bin"), dirname(process.execPath), "/usr/sbin", "/usr/bin", "/sbin", "/bin"].join(
        ":",
      ),
      // short paths: the driver's Unix sockets live below XDG_DATA_HOME
      XDG_CONFIG_HOME: join(home, "c"),
      XDG_DATA_HOME: join(home, "d"),
      OPENSHELL_VM_RUNTIME_DIR: RUNTIME_DIR,
      OPENSHELL_PROVISION_TIMEOUT: "300",
      NO_COLOR: "1",
      npm_config_userconfig: npmrc,
      npm_config_registry: registry,
      // native addons that build from source (ssh2's optional crypto) use this Node's headers
      ...(existsSync(join(NODE_DIR, "include", "node", "node.h")) ? { npm_config_nodedir: NODE_DIR } : {}),
    };
  }

  async function install(
    name: string,
    extraArgs: string[],
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<{ prefix: string; home: string }> {
    const prefix = join(root, `${name}-prefix`);
    const home = join(root, name);
    mkdirSync(home, { recursive: true });
    expectOk(
      await run(
        "npm",
        [
          "install",
          "-g",
          "--prefix",
          prefix,
          "--no-audit",
          "--no-fund",
          // What the README says to run: npm 11.16+ asks for it, npm 12 runs no dependency
          // install script without it (node-pty has no Linux prebuilds and builds in its own).
          "--allow-scripts=node-pty,ssh2,cpu-features",
          ...extraArgs,
          `openshell@${VERSION}`,
        ],
        { env: { ...userEnv(prefix, home), ...extraEnv }, cwd: home, timeoutMs: INSTALL_TIMEOUT_MS },
      ),
      `npm install -g openshell ${extraArgs.join(" ")}`,
    );
    return { prefix, home };
  }

  function openshell(user: { prefix: string; home: string }, args: string[], timeoutMs = 120_000) {
    return run("openshell", args, { env: userEnv(user.prefix, user.home), cwd: user.home, timeoutMs });
  }

  /** `openshell` as `user` with DOCKER_HOST at the private daemon (plus `extra` in the environment). */
  function openshellOnDocker(
    user: { prefix: string; home: string },
    daemon: DockerDaemon,
    args: string[],
    options: { timeoutMs?: number; extra?: NodeJS.ProcessEnv } = {},
  ) {
    const env = {
      ...userEnv(user.prefix, user.home),
      DOCKER_HOST: daemon.host,
      OPENSHELL_DOCKER_NETWORK: "openshell-npm-e2e",
      ...options.extra,
    };
    return run("openshell", args, { env, cwd: user.home, timeoutMs: options.timeoutMs ?? 240_000 });
  }

  function gatewayPid(user: { home: string }, name = "openshell"): number | undefined {
    const file = join(user.home, "d", "openshell", "gateways", name, "gateway.pid");
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  beforeAll(async () => {
    expectOk(
      await run("bash", [join(REPO, "scripts", "pack-release.sh"), tarballs], { timeoutMs: 300_000 }),
      "scripts/pack-release.sh",
    );
    const verdaccio = await ensureVerdaccio();
    const port = await freePort();
    registry = `http://127.0.0.1:${port}/`;
    const storage = join(root, "registry");
    mkdirSync(storage);
    // Our packages only ever come from here (no uplink for them, so the public `openshell` name never
    // mixes in); everything else (ssh2, better-sqlite3, ...) is proxied from the npm registry.
    writeFileSync(
      join(root, "verdaccio.yaml"),
      [
        `storage: ${storage}`,
        "auth:",
        "  htpasswd:",
        `    file: ${join(storage, "htpasswd")}`,
        "    max_users: -1",
        "uplinks:",
        "  npmjs:",
        "    url: https://registry.npmjs.org/",
        "packages:",
        "  'openshell':",
        "    access: $all",
        "    publish: $anonymous",
        "  '@openshell/*':",
        "    access: $all",
        "    publish: $anonymous",
        "  '**':",
        "    access: $all",
        "    publish: $anonymous",
        "    proxy: npmjs",
        "log: { type: stdout, format: pretty, level: warn }",
        "",
      ].join("\n"),
    );
    writeFileSync(npmrc, `//127.0.0.1:${port}/:_authToken=anonymous-test\n`);
    const log = openSync(join(root, "verdaccio.log"), "a");
    const child = spawn(
      process.execPath,
      [verdaccio, "--config", join(root, "verdaccio.yaml"), "--listen", `127.0.0.1:${port}`],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    verdaccioPid = child.pid;
    if (verdaccioPid) started.push(verdaccioPid);
    await waitFor(
      async () => (await fetch(`${registry}-/ping`).catch(() => undefined))?.ok === true,
      60_000,
      () => `verdaccio did not answer on ${registry}: ${readFileSync(join(root, "verdaccio.log"), "utf8")}`,
      child,
    );
    for (const tarball of readdirSync(tarballs).filter((name) => name.endsWith(".tgz"))) {
      expectOk(
        await run("npm", ["publish", join(tarballs, tarball), "--registry", registry, "--userconfig", npmrc]),
        `npm publish ${tarball}`,
      );
    }
  }, INSTALL_TIMEOUT_MS);

  afterAll(async () => {
    // Gateways this test started (its CLI records their pids), then verdaccio: by pid only.
    for (const name of ["u1", "u2", "u3", "u4"]) {
      for (const gateway of ["openshell", "dock"]) {
        const pid = gatewayPid({ home: join(root, name) }, gateway);
        if (pid !== undefined && isAlive(pid)) started.push(pid);
      }
    }
    for (const pid of started.reverse()) {
      if (!isAlive(pid)) continue;
      process.kill(pid, "SIGTERM");
      await waitFor(() => !isAlive(pid), 60_000, `pid ${pid} did not exit`).catch(() =>
        process.kill(pid, "SIGKILL"),
      );
    }
    for (const pid of pidsOf(/^qemu-system/, root)) process.kill(pid, "SIGKILL");
    if (daemon) {
      await daemon.removeMatching(MANAGED);
      await daemon.stop();
    }
    rmSync(root, { recursive: true, force: true });
  }, 180_000);

  it(
    "installs, starts a gateway (staging the VM runtime if needed), runs a sandbox and stops",
    async () => {
      const user = await installPlain();
      const modules = join(user.prefix, "lib", "node_modules", "openshell");
      expect(
        existsSync(join(modules, "node_modules", "@openshell", "gateway", "dist", "openshell-gateway.js")),
      ).toBe(true);
      // Only registry packages and our own: nothing bundled into the CLI was installed beside it.
      expect(existsSync(join(modules, "node_modules", "@openshell", "core"))).toBe(false);

      const version = expectOk(await openshell(user, ["--version"]), "openshell --version");
      expect(version.stdout.trim()).toBe(VERSION);

      const port = await freePort();
      const start = expectOk(
        await openshell(user, ["gateway", "start", "--port", String(port)], START_TIMEOUT_MS),
        "openshell gateway start",
      );
      // What a user sees (on first use: the VM runtime's staging progress).
      console.info(`openshell gateway start:\n${start.stderr}`);
      const pid = gatewayPid(user);
      expect(pid, start.stderr).toBeDefined();
      if (pid) started.push(pid);
      // The gateway and driver the CLI launched are the installed packages', not a checkout's.
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      expect(cmdline).toContain(join(modules, "node_modules", "@openshell", "gateway"));
      expect(cmdline).not.toContain(REPO);

      const create = expectOk(
        await openshell(user, ["sandbox", "create", "--", "echo", "ok"], START_TIMEOUT_MS),
        "openshell sandbox create -- echo ok",
      );
      expect(create.stdout).toContain("ok");
      const gatewayLog = readFileSync(
        join(user.home, "d", "openshell", "gateways", "openshell", "logs", "gateway.log"),
        "utf8",
      );
      // The guest's supervisor is the published package's build: same version, no mismatch warning.
      expect(gatewayLog).toContain(`"supervisor_version":"${VERSION}"`);
      expect(gatewayLog).not.toContain("SupervisorVersionMismatch");

      expectOk(await openshell(user, ["gateway", "stop"], 180_000), "openshell gateway stop");
      expect(pid !== undefined && isAlive(pid)).toBe(false);
      expect(pidsOf(/^qemu-system/, user.home)).toEqual([]);
    },
    2 * START_TIMEOUT_MS,
  );

  it.skipIf(!isRoot)(
    "the same install runs sandboxes as Docker containers: the supervisor staged from the installed package",
    async () => {
      const user = await installPlain();
      const daemon = await privateDocker();
      // The default image is imported from the VM runtime on first use: drop what older runs left.
      const old = (await daemon.docker(["images", "-q", "openshell/sandbox"])).stdout
        .split("\n")
        .filter(Boolean);
      if (old.length > 0) await daemon.docker(["rmi", "-f", ...new Set(old)], { allowFailure: true });
      const openshellDocker = (args: string[], timeoutMs?: number) =>
        openshellOnDocker(user, daemon, args, { timeoutMs });
      const port = await freePort();
      const start = expectOk(
        await openshellDocker(
          ["gateway", "start", "--name", "dock", "--driver", "docker", "--port", String(port)],
          START_TIMEOUT_MS,
        ),
        "openshell gateway start --driver docker",
      );
      console.info(`openshell gateway start --driver docker:\n${start.stderr}`);
      const pid = gatewayPid(user, "dock");
      expect(pid, start.stderr).toBeDefined();
      if (pid) started.push(pid);

      // The directory mounted into containers holds the installed supervisor package's bundle.
      const modules = join(user.prefix, "lib", "node_modules", "openshell", "node_modules", "@openshell");
      const staged = join(user.home, "d", "openshell", "gateways", "dock", "supervisor-bin");
      expect(sha256(join(staged, "openshell-sandbox.js"))).toBe(
        sha256(join(modules, "sandbox-supervisor", "dist", "openshell-sandbox.js")),
      );

      const create = expectOk(
        await openshellDocker(["sandbox", "create", "--no-keep", "--", "echo", "ok"], START_TIMEOUT_MS),
        "openshell sandbox create --no-keep -- echo ok (Docker)",
      );
      expect(create.stdout).toContain("ok");
      const gatewayLog = readFileSync(
        join(user.home, "d", "openshell", "gateways", "dock", "logs", "gateway.log"),
        "utf8",
      );
      expect(gatewayLog).toContain(`"supervisor_version":"${VERSION}"`);
      expect(gatewayLog).not.toContain("SupervisorVersionMismatch");
      const left = (await daemon.docker(["ps", "-aq", "--filter", MANAGED])).stdout.trim();
      expect(left, "--no-keep deletes the container").toBe("");

      expectOk(
        await openshellDocker(["gateway", "stop", "--name", "dock"], 180_000),
        "openshell gateway stop",
      );
      expect(pid !== undefined && isAlive(pid)).toBe(false);
    },
    2 * START_TIMEOUT_MS,
  );

  it(
    "installs with --omit=optional; without the optional native parts the gateway still starts",
    async () => {
      const user = await install("u2", ["--omit=optional"]);
      const modules = join(user.prefix, "lib", "node_modules", "openshell", "node_modules");
      expect(existsSync(join(modules, "better-sqlite3"))).toBe(true);
      // npm ignores --omit for global installs (npm/cli#8284): cpu-features is there anyway. Remove
      // the optional native parts by hand, as a host without a compiler ends up.
      rmSync(join(modules, "cpu-features"), { recursive: true, force: true });
      rmSync(join(modules, "ssh2", "lib", "protocol", "crypto", "build"), { recursive: true, force: true });

      expect(expectOk(await openshell(user, ["--version"]), "openshell --version").stdout.trim()).toBe(
        VERSION,
      );
      const port = await freePort();
      expectOk(
        await openshell(user, ["gateway", "start", "--port", String(port)], START_TIMEOUT_MS),
        "openshell gateway start (--omit=optional)",
      );
      const pid = gatewayPid(user);
      if (pid) started.push(pid);
      expect(pid !== undefined && isAlive(pid)).toBe(true);
      expectOk(await openshell(user, ["gateway", "stop"], 180_000), "openshell gateway stop");
      expect(pid !== undefined && isAlive(pid)).toBe(false);

      // A required native module that does not load: the start fails and says how to fix it.
      const addon = join(modules, "better-sqlite3", "prebuilds", `${process.platform}-${process.arch}.node`);
      writeFileSync(addon, "not an ELF file");
      const broken = await openshell(user, ["gateway", "start", "--port", String(port)], START_TIMEOUT_MS);
      expect(broken.code).not.toBe(0);
      expect(broken.stderr).toContain("better-sqlite3's native addon does not load");
      expect(broken.stderr).toContain("npm install -g openshell");
    },
    2 * START_TIMEOUT_MS,
  );

  it(
    "installs without a compiler: node-pty is skipped, the CLI works, gateway start says what to install, and with a Docker daemon and an image it starts with Docker instead (sandboxes without terminals)",
    async () => {
      // CC/CXX that always fail: every native build (node-pty, ssh2's crypto, cpu-features) fails.
      const user = await install("u3", [], { CC: "/bin/false", CXX: "/bin/false" });
      const modules = join(user.prefix, "lib", "node_modules", "openshell", "node_modules");
      expect(existsSync(join(modules, "node-pty"))).toBe(false);
      expect(
        existsSync(join(modules, "ssh2", "lib", "protocol", "crypto", "build", "Release", "sshcrypto.node")),
      ).toBe(false);
      expect(expectOk(await openshell(user, ["--version"]), "openshell --version").stdout.trim()).toBe(
        VERSION,
      );
      const start = await openshell(user, ["gateway", "start", "--port", String(await freePort())]);
      expect(start.code, start.stderr).not.toBe(0);
      expect(start.stderr).toContain("node-pty is not installed beside the supervisor");
      expect(start.stderr).toContain("apt-get install -y build-essential python3");
      expect(gatewayPid(user)).toBeUndefined();
      if (!isRoot) return;

      // No VM runtime can be staged here, but Docker answers: the error says so, and given an image
      // (the Docker driver's default one is the VM runtime's root filesystem) the gateway starts
      // with Docker instead.
      const daemon = await privateDocker();
      const openshellDocker = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
        openshellOnDocker(user, daemon, args, { extra });
      const byDefault = await openshellDocker(["gateway", "start", "--port", String(await freePort())]);
      expect(byDefault.code, byDefault.stderr).not.toBe(0);
      expect(byDefault.stderr).toContain("node-pty is not installed beside the supervisor");
      expect(byDefault.stderr).toContain(`Docker answers at ${daemon.host}`);
      expect(byDefault.stderr).toContain("OPENSHELL_SANDBOX_IMAGE=");

      const image = await localSandboxImage(daemon);
      const fallback = await openshellDocker(
        ["gateway", "start", "--name", "dock", "--port", String(await freePort())],
        { OPENSHELL_SANDBOX_IMAGE: image },
      );
      expect(fallback.code, fallback.stderr).toBe(0);
      expect(fallback.stderr).toContain("the VM runtime cannot be staged here");
      // The supervisor for containers is staged without node-pty, and the user is told what it costs.
      expect(fallback.stderr).toContain("sandboxes get no terminals");
      const pid = gatewayPid(user, "dock");
      if (pid) started.push(pid);
      const info = JSON.parse(
        (await openshellDocker(["gateway", "info", "--name", "dock", "-o", "json"])).stdout,
      );
      expect(info.driver).toBe("docker");
      expect(info.driver_reason).toContain(
        `Docker at ${daemon.host} answers: sandboxes are containers of ${image}`,
      );
      const create = await openshellDocker(["sandbox", "create", "--name", "nopty", "--", "echo", "ok"]);
      expect(create.code, create.stderr).toBe(0);
      expect(create.stdout).toContain("ok");
      // Only terminals are missing, and asking for one says why and what to do instead.
      const tty = await openshellDocker(["sandbox", "exec", "--tty", "nopty", "--", "true"]);
      expect(tty.code).not.toBe(0);
      expect(tty.stdout + tty.stderr).toContain("this sandbox has no terminals");
      expectOk(await openshellDocker(["sandbox", "delete", "nopty"]), "openshell sandbox delete");
      expectOk(await openshellDocker(["gateway", "stop", "--name", "dock"]), "openshell gateway stop");
    },
    2 * START_TIMEOUT_MS,
  );

  it(
    "installs without install scripts (npm 12's default): gateway start says how to reinstall",
    async () => {
      const user = await install("u4", ["--ignore-scripts"]);
      expect(expectOk(await openshell(user, ["--version"]), "openshell --version").stdout.trim()).toBe(
        VERSION,
      );
      const start = await openshell(user, ["gateway", "start", "--port", String(await freePort())]);
      expect(start.code, start.stderr).not.toBe(0);
      expect(start.stderr).toContain("has no native addon that loads");
      expect(start.stderr).toContain("npm install -g --allow-scripts=node-pty,ssh2,cpu-features openshell");
      expect(gatewayPid(user)).toBeUndefined();
    },
    INSTALL_TIMEOUT_MS,
  );
});
