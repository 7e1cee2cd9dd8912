// File transfer benchmarks for issue 18. Prints every figure with its same-run baseline:
//  1. OpenSSH `sftp` put and get of an N MiB file through ssh-proxy + gateway + relay, vs the same
//     `sftp` straight to the supervisor's Unix socket (size and SHA-256 checked after each);
//  2. `openshell sandbox upload` and `sandbox download` of a tree of many small files through the
//     real CLI, vs `tar c | ssh … tar x` (and the reverse) straight to the socket, and the same tar
//     pipeline through the relay, which splits the CLI's own cost from the relay's (file count and
//     bytes checked after each). The same tar pipeline on the host without ssh shows what the file
//     system alone costs for that many files.
// Usage: bash bench/run.sh transfer-bench.ts [--mib 256] [--files 10000] [--runs 3] [--tls]
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SandboxPhase } from "@openshell/proto";
import { type GatewayTls, makeStateDir, type RunningGateway } from "@openshell/testing/gateway-harness";
import {
  CLI_BIN,
  endSupervisors,
  makeWorkdir,
  sshOptions,
  sshOptionsVia,
  startGatewayWithSupervisors,
  supervisorPid,
  supervisorPidIfAny,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { makeTestPki } from "@openshell/testing/test-pki";
import { cpuMs } from "./proc-stats.js";
import { median, secondsSummary } from "./stats.js";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    files: { type: "string", default: "10000" },
    runs: { type: "string", default: "3" },
    tls: { type: "boolean", default: false },
  },
});
const MIB = Number(values.mib);
const FILES = Number(values.files);
const RUNS = Number(values.runs);
const UNIX_PROXY = resolve(import.meta.dirname, "..", "unix-socket-proxy.mjs");
/** Generous: a 256 MiB transfer or a 10,000-file tree takes seconds, but a loaded host may stall. */
const TRANSFER_TIMEOUT_MS = 600_000;
const FILES_PER_DIRECTORY = 100;
const GATEWAY_NAME = "bench";
/** What the CLI's transfers send too: the sandbox user's login shell stays out of the data stream. */
const NO_LOGIN_SHELL = ["-o", "SetEnv=OPENSHELL_NO_LOGIN_SHELL=1"];

/** The two ways to the same sandbox's SSH server, as OpenSSH options. */
interface SshRoutes {
  straight: string[];
  relay: string[];
}

interface TreeSize {
  files: number;
  bytes: number;
}

const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;
const shellLine = (args: string[]) => args.map(quote).join(" ");

function sshSocketOf(stateDir: string, id: string): string {
  return join(stateDir, "drv", "supervisors", `${id.slice(0, 8)}.sock`);
}

/**
 * Runs a command to completion (stdin `input`, then closed) and returns its wall time in ms; a
 * failure throws with the tail of its stderr.
 */
function timed(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<number> {
  return new Promise((done, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ["pipe", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), TRANSFER_TIMEOUT_MS);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return done(Number(process.hrtime.bigint() - started) / 1e6);
      reject(new Error(`${command} ${args.join(" ")} ended with ${code ?? signal}:\n${stderr}`));
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** N MiB of random bytes (nothing along the way can compress them); returns their SHA-256. */
function writeRandomFile(file: string, mib: number): string {
  const hash = createHash("sha256");
  const fd = openSync(file, "w");
  try {
    for (let i = 0; i < mib; i++) {
      const chunk = randomBytes(1024 * 1024);
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** `files` small files (0.5–4 KiB of random bytes) in directories of FILES_PER_DIRECTORY. */
function writeTree(root: string, files: number): TreeSize {
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${String(Math.floor(i / FILES_PER_DIRECTORY)).padStart(3, "0")}`);
    if (i % FILES_PER_DIRECTORY === 0) mkdirSync(dir, { recursive: true });
    const content = randomBytes(512 * (1 + (i % 8)));
    const fd = openSync(join(dir, `f${String(i).padStart(5, "0")}.bin`), "w");
    writeSync(fd, content);
    closeSync(fd);
    bytes += content.length;
  }
  return { files, bytes };
}

function treeSize(root: string): TreeSize {
  const files = readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  return {
    files: files.length,
    bytes: files.reduce((sum, e) => sum + statSync(join(e.parentPath, e.name)).size, 0),
  };
}

/** A transfer that lost or truncated files must not count as a fast one. */
function checkTree(root: string, expected: TreeSize, what: string): void {
  const got = treeSize(root);
  if (got.files !== expected.files || got.bytes !== expected.bytes)
    throw new Error(
      `${what}: ${got.files} files, ${got.bytes} bytes in ${root}; expected ${expected.files} files, ${expected.bytes} bytes`,
    );
}

async function checkFile(file: string, sha256: string, what: string): Promise<void> {
  const size = statSync(file).size;
  if (size !== MIB * 1024 * 1024) throw new Error(`${what}: ${file} has ${size} bytes, expected ${MIB} MiB`);
  if ((await sha256Of(file)) !== sha256) throw new Error(`${what}: ${file} has other bytes than were sent`);
}

interface SftpRun {
  putMs: number;
  getMs: number;
  /** CPU ms per MiB moved (put and get together) of the gateway and of the supervisor. */
  gatewayCpu: number;
  supervisorCpu: number;
}

/** One sftp session per direction, connection set-up included; both results checked. */
async function sftpRoundTrip(
  ssh: string[],
  files: { source: string; sha256: string; remote: string; back: string },
  pids: { gateway: number; supervisor: number },
): Promise<SftpRun> {
  const sftp = (command: string) => timed("sftp", [...ssh, "-b", "-", "sandbox"], { input: `${command}\n` });
  const gatewayBefore = cpuMs(pids.gateway);
  const supervisorBefore = cpuMs(pids.supervisor);
  const putMs = await sftp(`put ${files.source} ${files.remote}`);
  const getMs = await sftp(`get ${files.remote} ${files.back}`);
  const sftpRun = {
    putMs,
    getMs,
    gatewayCpu: (cpuMs(pids.gateway) - gatewayBefore) / (2 * MIB),
    supervisorCpu: (cpuMs(pids.supervisor) - supervisorBefore) / (2 * MIB),
  };
  await checkFile(files.remote, files.sha256, "sftp put");
  await checkFile(files.back, files.sha256, "sftp get");
  rmSync(files.remote);
  rmSync(files.back);
  return sftpRun;
}

const megabytesPerSecond = (ms: number) => (MIB * 1.048576) / (ms / 1000);

const mbSummary = (xs: number[]) =>
  `${median(xs).toFixed(0)} [${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}] MB/s (n=${xs.length})`;

function printSftp(straight: SftpRun[], relay: SftpRun[]): void {
  const cpu = (runs: SftpRun[]) =>
    `CPU ms/MiB: gateway ${median(runs.map((r) => r.gatewayCpu)).toFixed(2)}, supervisor ${median(runs.map((r) => r.supervisorCpu)).toFixed(2)}`;
  for (const direction of ["put", "get"] as const) {
    const speeds = (runs: SftpRun[]) =>
      runs.map((r) => megabytesPerSecond(direction === "put" ? r.putMs : r.getMs));
    console.log(`sftp ${direction} ${MIB} MiB straight to the socket : ${mbSummary(speeds(straight))}`);
    console.log(`sftp ${direction} ${MIB} MiB through the relay     : ${mbSummary(speeds(relay))}`);
    console.log(
      `  ratio relay/straight (MB/s medians)  : ${(median(speeds(relay)) / median(speeds(straight))).toFixed(2)}`,
    );
  }
  console.log(`sftp put+get straight: ${cpu(straight)}`);
  console.log(`sftp put+get relay   : ${cpu(relay)}`);
}

async function benchSftp(
  routes: SshRoutes,
  dirs: { scratch: string; workdir: string },
  pids: { gateway: number; supervisor: number },
): Promise<void> {
  const source = join(dirs.scratch, "source.bin");
  const sha256 = writeRandomFile(source, MIB);
  const files = {
    source,
    sha256,
    remote: join(dirs.workdir, "put.bin"),
    back: join(dirs.scratch, "back.bin"),
  };
  const straight: SftpRun[] = [];
  const relay: SftpRun[] = [];
  for (let i = 0; i < RUNS; i++) {
    straight.push(await sftpRoundTrip(routes.straight, files, pids));
    relay.push(await sftpRoundTrip(routes.relay, files, pids));
  }
  rmSync(source);
  printSftp(straight, relay);
}

/** `openshell` with its own config and data dirs, with the bench gateway registered and active. */
async function cliEnvFor(
  gw: RunningGateway,
  root: string,
  tls?: GatewayTls["client"],
): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: join(root, "config"),
    XDG_DATA_HOME: join(root, "data"),
    NO_COLOR: "1",
  };
  delete env.OPENSHELL_GATEWAY;
  delete env.OPENSHELL_GATEWAY_ENDPOINT;
  const tlsFlags = tls
    ? [
        "--ca-cert",
        tls.ca,
        ...(tls.cert && tls.key ? ["--client-cert", tls.cert, "--client-key", tls.key] : []),
      ]
    : [];
  await timed(process.execPath, [CLI_BIN, "gateway", "add", gw.url, "--name", GATEWAY_NAME, ...tlsFlags], {
    env,
  });
  return env;
}

interface TreeRuns {
  upload: number[];
  download: number[];
}

type Direction = "upload" | "download";

/** The three ways one tree goes into the sandbox and back: each a pair of timed commands. */
interface TreeTransfer {
  label: (direction: Direction) => string;
  upload: (local: string, remote: string) => Promise<number>;
  download: (remote: string, local: string) => Promise<number>;
}

function tarOver(route: string, ssh: string[]): TreeTransfer {
  const sshLine = `ssh ${shellLine([...ssh, ...NO_LOGIN_SHELL])} sandbox`;
  const pipeline = (script: string) => timed("bash", ["-c", `set -o pipefail; ${script}`]);
  return {
    label: (direction) => `${direction === "upload" ? "tar c | ssh tar x" : "ssh tar c | tar x"} ${route}`,
    upload: (local, remote) =>
      pipeline(
        `tar -cf - -C ${quote(local)} . | ${sshLine} ${quote(`mkdir -p ${quote(remote)} && tar -xf - -C ${quote(remote)}`)}`,
      ),
    // --no-same-owner: as the CLI's extractor, the bench (root) does not take the sandbox's owners.
    download: (remote, local) =>
      pipeline(
        `mkdir -p ${quote(local)} && ${sshLine} ${quote(`tar -cf - -C ${quote(remote)} .`)} | tar -xf - --no-same-owner -C ${quote(local)}`,
      ),
  };
}

/**
 * The same tar pipeline without ssh, on the host: what creating and reading this many files costs
 * the file system alone, which bounds every other row from below.
 */
function tarOnHost(): TreeTransfer {
  const copy = (from: string, to: string) =>
    timed("bash", [
      "-c",
      `set -o pipefail; mkdir -p ${quote(to)} && tar -cf - -C ${quote(from)} . | tar -xf - --no-same-owner -C ${quote(to)}`,
    ]);
  return {
    label: () => "tar c | tar x on the host, no ssh",
    upload: copy,
    download: copy,
  };
}

function openshellCli(env: NodeJS.ProcessEnv): TreeTransfer {
  const cli = (args: string[]) => timed(process.execPath, [CLI_BIN, "-g", GATEWAY_NAME, ...args], { env });
  return {
    label: (direction) => `openshell sandbox ${direction}`,
    upload: (local, remote) => cli(["sandbox", "upload", "bench-0", local, remote]),
    download: (remote, local) => cli(["sandbox", "download", "bench-0", remote, local]),
  };
}

/**
 * Up and back once, each result's file count and bytes checked. The copies stay until the end:
 * ext4 skips inodes freed in the last seconds when it allocates (`recently_deleted`, a scan that
 * took every transfer of 10,000 files from 1-3 s to 8-11 s when each run removed its copies at once).
 */
async function treeRoundTrip(
  transfer: TreeTransfer,
  tree: { root: string; size: TreeSize },
  dirs: { remote: string; back: string },
  runs: TreeRuns,
): Promise<void> {
  runs.upload.push(await transfer.upload(tree.root, dirs.remote));
  checkTree(dirs.remote, tree.size, transfer.label("upload"));
  runs.download.push(await transfer.download(dirs.remote, dirs.back));
  checkTree(dirs.back, tree.size, transfer.label("download"));
}

function printTree(transfers: TreeTransfer[], runs: TreeRuns[], size: TreeSize): void {
  const baseline = runs[0] as TreeRuns;
  for (const direction of ["upload", "download"] as Direction[]) {
    console.log(`tree ${direction}, ${size.files} files (${(size.bytes / 1e6).toFixed(1)} MB):`);
    transfers.forEach((transfer, i) => {
      const times = (runs[i] as TreeRuns)[direction];
      const ratio =
        i === 0
          ? ""
          : `  time ratio to straight: ${(median(times) / median(baseline[direction])).toFixed(2)}×`;
      console.log(`  ${transfer.label(direction).padEnd(40)}: ${secondsSummary(times)}${ratio}`);
    });
  }
}

async function benchTree(
  transfers: TreeTransfer[],
  dirs: { scratch: string; workdir: string },
): Promise<void> {
  const root = join(dirs.scratch, "tree");
  const size = writeTree(root, FILES);
  checkTree(root, size, "generated tree");
  const runs: TreeRuns[] = transfers.map(() => ({ upload: [], download: [] }));
  for (let i = 0; i < RUNS; i++) {
    for (const [t, transfer] of transfers.entries()) {
      await treeRoundTrip(
        transfer,
        { root, size },
        { remote: join(dirs.workdir, `tree-${i}-${t}`), back: join(dirs.scratch, `back-${i}-${t}`) },
        runs[t] as TreeRuns,
      );
    }
  }
  rmSync(root, { recursive: true, force: true });
  printTree(transfers, runs, size);
}

async function gatewayTls(stateDir: string): Promise<GatewayTls> {
  const pki = await makeTestPki(join(stateDir, "pki"));
  return {
    cert: pki.serverCert,
    key: pki.serverKey,
    clientCa: pki.ca,
    client: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
  };
}

async function main() {
  const stateDir = makeStateDir();
  const workdir = makeWorkdir();
  const scratch = mkdtempSync(join(tmpdir(), "transfer-bench-"));
  const tls = values.tls ? await gatewayTls(stateDir) : undefined;
  const gw = await startGatewayWithSupervisors({ stateDir, workdir, tls });
  let id = "";
  try {
    console.log(
      `# transfer-bench  node ${process.version}  ${MIB} MiB, ${FILES} files x ${RUNS} runs  gateway ${tls ? "TLS (mTLS)" : "h2c"}  (${new Date().toISOString()})`,
    );
    id = (await gw.grpc.createSandbox({ spec: {}, name: "bench-0" })).sandbox!.id;
    await waitForPhase(gw, "bench-0", SandboxPhase.READY, 60_000);
    const token = (await gw.grpc.createSshSession({ sandboxId: id })).token;
    const routes: SshRoutes = {
      straight: sshOptionsVia(`${process.execPath} ${UNIX_PROXY} ${sshSocketOf(stateDir, id)}`),
      relay: sshOptions(gw, id, token, tls?.client),
    };
    const dirs = { scratch, workdir };
    await benchSftp(routes, dirs, { gateway: gw.pid, supervisor: supervisorPid(stateDir, id) });
    const cliEnv = await cliEnvFor(gw, join(scratch, "cli"), tls?.client);
    await benchTree(
      [
        tarOver("straight to the socket", routes.straight),
        tarOver("through the relay", routes.relay),
        openshellCli(cliEnv),
        tarOnHost(),
      ],
      dirs,
    );
  } finally {
    const supervisor = id ? supervisorPidIfAny(stateDir, id) : undefined;
    await endSupervisors(supervisor ? [supervisor] : []);
    await gw.stop("SIGTERM");
    for (const dir of [stateDir, workdir, scratch]) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
