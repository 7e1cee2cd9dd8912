import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, OpenShellError } from "@openshell/core";
import { freePort, isAlive, waitFor } from "@openshell/testing/process";
import type { Client, ClientChannel } from "ssh2";
import { afterEach, describe, expect, it } from "vitest";
import { SandboxSshServer } from "../src/ssh/index.js";
import {
  activeResources,
  ChannelOutput,
  channelExit,
  connectClient,
  execChannel,
  makeFixtureDirs,
  NOBODY_UID,
  runTool,
  type SshFixture,
  sshOptions,
  startFixture,
} from "./ssh-harness.js";

const fixtures: SshFixture[] = [];
const roots: string[] = [];
const clients: Client[] = [];
const children: ChildProcess[] = [];
const tcpServers: net.Server[] = [];

async function fixture(): Promise<SshFixture> {
  const started = await startFixture();
  fixtures.push(started);
  return started;
}

async function client(socketPath: string): Promise<Client> {
  const connected = await connectClient(socketPath);
  connected.on("error", () => {});
  clients.push(connected);
  return connected;
}

afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  for (const connected of clients.splice(0)) connected.destroy();
  for (const server of tcpServers.splice(0)) server.close();
  for (const started of fixtures.splice(0)) {
    await started.server.close();
    roots.push(started.root);
  }
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

const silentLogger = () => createLogger({ name: "ssh-test", level: "silent" });

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

const ssh = (f: { socketPath: string }, args: string[], input?: string | Buffer) =>
  runTool("ssh", [...sshOptions(f.socketPath), ...args], { input });

const events = (f: SshFixture, shorthand: string) =>
  f.logs.filter((line) => typeof line.msg === "string" && line.msg.startsWith(shorthand));

describe("SandboxSshServer with the OpenSSH client", () => {
  it("runs exec as the sandbox user in the workdir, with separate stderr and the exit code", async () => {
    const f = await fixture();
    const result = await ssh(f, ["sandbox", "id -un; pwd; echo err >&2; exit 7"]);
    expect(result).toMatchObject({ code: 7, stdout: `nobody\n${f.workdir}\n`, stderr: "err\n" });
    expect(events(f, "SSH:LISTEN")[0]?.msg).toBe(`SSH:LISTEN [INFO] SSH server listening on ${f.socketPath}`);
    expect(events(f, "SSH:OPEN [INFO] ALLOWED")).toHaveLength(1);
    const terminated = events(f, "PROC:TERMINATE")[0];
    expect(terminated).toMatchObject({ kind: "exec", exit_code: 7, user: "nobody" });
    expect(events(f, "PROC:LAUNCH")[0]?.pid).toBe(terminated?.pid);
  });

  it("gives children a login environment built from scratch, plus allowlisted env requests", async () => {
    const f = await fixture();
    process.env.OPENSHELL_TEST_SUPERVISOR_SECRET = "leak";
    try {
      const script =
        'echo "$HOME|$USER|$LOGNAME|$SHELL|$TERM|$OPENSHELL_SANDBOX|$OPENSHELL_SANDBOX_NAME"; ' +
        'echo "$LC_TEST_LOCALE|$OPENSHELL_TRACE"; printenv LD_PRELOAD OPENSHELL_TEST_SUPERVISOR_SECRET VITEST || echo none; id -G';
      const result = await ssh(f, [
        "-o",
        "SetEnv=LC_TEST_LOCALE=de_DE.UTF-8 OPENSHELL_TRACE=1 LD_PRELOAD=/tmp/evil.so",
        "sandbox",
        script,
      ]);
      expect(result.stderr).toBe("");
      expect(result.stdout.split("\n")).toEqual([
        "/nonexistent|nobody|nobody|/bin/bash|dumb|1|test-box",
        "de_DE.UTF-8|1",
        "none",
        String(NOBODY_UID),
        "",
      ]);
    } finally {
      delete process.env.OPENSHELL_TEST_SUPERVISOR_SECRET;
    }
  });

  it("runs exec without the user's startup files when the client asks for a plain shell", async () => {
    // A home the user controls, with every file a login, interactive or ssh-started bash may read.
    const home = mkdtempSync(join(tmpdir(), "openshell-home-"));
    roots.push(home);
    chmodSync(home, 0o755);
    chownSync(home, NOBODY_UID, NOBODY_UID);
    const marker = (file: string) => `echo ${file} >> "${home}/ran"\n`;
    for (const file of [".bash_profile", ".profile", ".bashrc", "bash_env", "sh_env"]) {
      writeFileSync(join(home, file), marker(file));
    }
    const started = await startFixture({
      env: {
        OPENSHELL_SANDBOX_NAME: "test-box",
        HOME: home,
        BASH_ENV: `${home}/bash_env`,
        ENV: `${home}/sh_env`,
      },
    });
    fixtures.push(started);
    const ran = () => (existsSync(join(home, "ran")) ? readFileSync(join(home, "ran"), "utf8") : "");

    const plain = await ssh(started, [
      "-o",
      "SetEnv=OPENSHELL_NO_LOGIN_SHELL=1",
      "sandbox",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell expansions, run remotely
      'echo "$0|${BASH_ENV-unset}|${ENV-unset}|${OPENSHELL_NO_LOGIN_SHELL-unset}"; id -un; pwd',
    ]);
    expect(plain.stderr).toBe("");
    expect(plain.stdout).toBe(`/bin/bash|unset|unset|unset\nnobody\n${started.workdir}\n`);
    expect(ran()).toBe("");
    expect(events(started, "PROC:LAUNCH")[0]).toMatchObject({ kind: "exec", login_shell: false });

    // A plain request for one channel leaves the next connection's exec a login shell again.
    const login = await ssh(started, ["sandbox", "echo login"]);
    expect(login).toMatchObject({ code: 0, stdout: "login\n" });
    expect(ran()).toContain(".bash_profile");
    expect(events(started, "PROC:LAUNCH")[1]).toMatchObject({ kind: "exec", login_shell: true });
  });

  it("streams stdin into exec with EOF, with backpressure over several MiB", async () => {
    const f = await fixture();
    expect(await ssh(f, ["sandbox", "cat"], "hello\n")).toMatchObject({ code: 0, stdout: "hello\n" });

    const payload = randomBytes(6 * 1024 * 1024);
    const result = await ssh(f, ["sandbox", "sha256sum"], payload);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${sha256(payload)}  -\n`);

    // And the other way: several MiB of output arrive intact.
    const out = await ssh(f, ["sandbox", "head -c 5000000 /dev/zero | tr '\\0' 'x'"]);
    expect(out.stdoutBytes.length).toBe(5_000_000);
  });

  it("allocates a PTY for ssh -tt, as the user and without supplementary groups", async () => {
    const f = await fixture();
    const result = await ssh(f, ["-tt", "sandbox", "tty; stty size; id -un; id -G; echo $TERM"]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\r\n");
    expect(lines[0]).toMatch(/^\/dev\/pts\/\d+$/);
    expect(lines[1]).toMatch(/^\d+ \d+$/);
    expect(lines.slice(2, 4)).toEqual(["nobody", String(NOBODY_UID)]);
    expect(events(f, "PROC:LAUNCH")[0]).toMatchObject({ pty: true });
  });

  it("runs a login shell on pipes (ssh -T, as editors do) and on a PTY", async () => {
    const f = await fixture();
    const piped = await ssh(
      f,
      ["-T", "sandbox"],
      'shopt -q login_shell && echo "login $0 in $PWD"; tty; exit 4\n',
    );
    expect(piped).toMatchObject({ code: 4, stdout: `login /bin/bash in ${f.workdir}\nnot a tty\n` });

    const connected = await client(f.socketPath);
    const shell = await new Promise<ClientChannel>((resolve, reject) =>
      connected.shell({ rows: 24, cols: 80, term: "xterm" }, (error, channel) =>
        error ? reject(error) : resolve(channel),
      ),
    );
    const output = new ChannelOutput(shell);
    const exited = channelExit(shell);
    shell.write("echo interactive=$-; tty; exit 5\n");
    await output.waitFor(/interactive=\S*i\S*\r?\n\/dev\/pts\/\d+/);
    expect(await exited).toEqual({ code: 5, signal: undefined });
    expect(events(f, "PROC:LAUNCH").map((event) => [event.kind, event.pty])).toEqual([
      ["shell", false],
      ["shell", true],
    ]);
  });

  it("transfers files with sftp (put and get) and scp, owned by the sandbox user", async () => {
    const f = await fixture();
    const local = join(f.root, "local");
    mkdirSync(local);
    const payload = randomBytes(1024 * 1024);
    writeFileSync(join(local, "upload.bin"), payload);
    const batch = join(local, "batch");
    writeFileSync(
      batch,
      `put ${join(local, "upload.bin")} remote.bin\nget remote.bin ${join(local, "back.bin")}\n`,
    );

    const sftp = await runTool("sftp", [...sshOptions(f.socketPath), "-b", batch, "sandbox"]);
    expect(sftp.stderr).toBe("");
    expect(sftp.code).toBe(0);
    const remote = join(f.workdir, "remote.bin");
    expect(sha256(readFileSync(remote))).toBe(sha256(payload));
    expect(statSync(remote).uid).toBe(NOBODY_UID);
    expect(sha256(readFileSync(join(local, "back.bin")))).toBe(sha256(payload));

    const scp = await runTool("scp", [
      ...sshOptions(f.socketPath),
      join(local, "upload.bin"),
      "sandbox:scp.bin",
    ]);
    expect(scp).toMatchObject({ code: 0, stderr: "" });
    expect(sha256(readFileSync(join(f.workdir, "scp.bin")))).toBe(sha256(payload));
    expect(statSync(join(f.workdir, "scp.bin")).uid).toBe(NOBODY_UID);
    expect(events(f, "PROC:LAUNCH").map((event) => event.subsystem)).toEqual(["sftp", "sftp"]);
  });

  it("forwards ssh -L to a loopback port, keeping half-closed directions open", async () => {
    const f = await fixture();
    // echo: answers everything, ends after the client does. greeter: says bye and ends its side
    // first, then still takes everything the client sends.
    const echo = await tcpServer((socket) => socket.pipe(socket));
    let greeterReceived: (data: Buffer) => void = () => {};
    const greeterData = new Promise<Buffer>((resolve) => {
      greeterReceived = resolve;
    });
    const greeter = await tcpServer((socket) => {
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.once("end", () => greeterReceived(Buffer.concat(chunks)));
      socket.end("bye\n");
    });
    const [echoLocal, greeterLocal] = [await freePort(), await freePort()];

    const forward = spawn(
      "ssh",
      [
        ...sshOptions(f.socketPath),
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        `${echoLocal}:127.0.0.1:${echo}`,
        "-L",
        `${greeterLocal}:localhost:${greeter}`,
        "sandbox",
      ],
      { stdio: "ignore" },
    );
    children.push(forward);
    const payload = randomBytes(512 * 1024);
    let echoed: Buffer | undefined;
    const deadline = Date.now() + 5000;
    while (!echoed) {
      try {
        echoed = await roundTrip(echoLocal, payload);
      } catch (error) {
        if (Date.now() > deadline || forward.exitCode !== null) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    // The client half-closed right after sending: everything still came back, then EOF.
    expect(sha256(echoed)).toBe(sha256(payload));

    // The server half-closed first: its EOF arrives, and the client can still send.
    const greeting = await new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect({ port: greeterLocal, host: "127.0.0.1", allowHalfOpen: true });
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.once("error", reject);
      socket.once("end", () => {
        socket.end(payload);
        resolve(Buffer.concat(chunks));
      });
    });
    expect(greeting.toString()).toBe("bye\n");
    expect(sha256(await greeterData)).toBe(sha256(payload));
  });
});

describe("SandboxSshServer with an ssh2 client", () => {
  it("resizes the PTY on window-change", async () => {
    const f = await fixture();
    const connected = await client(f.socketPath);
    const channel = await execChannel(connected, "stty size; read line; stty size", {
      pty: { rows: 30, cols: 100, term: "xterm" },
    });
    const output = new ChannelOutput(channel);
    const exited = channelExit(channel);
    await output.waitFor(/30 100/);
    channel.setWindow(40, 120, 0, 0);
    channel.write("go\n");
    await output.waitFor(/40 120/);
    expect(await exited).toEqual({ code: 0, signal: undefined });
  });

  it("delivers signals to the child and reports exit-signal", async () => {
    const f = await fixture();
    const connected = await client(f.socketPath);

    const sleeper = await execChannel(connected, "echo ready; exec sleep 30");
    const sleeperOutput = new ChannelOutput(sleeper);
    const sleeperExit = channelExit(sleeper);
    await sleeperOutput.waitFor(/ready/);
    const sentAt = Date.now();
    sleeper.signal("TERM");
    expect(await sleeperExit).toMatchObject({ code: null, signal: "SIGTERM" });
    expect(Date.now() - sentAt).toBeLessThan(1000);

    const trapper = await execChannel(
      connected,
      'trap "echo got USR1; exit 3" USR1; echo ready; while :; do sleep 0.05; done',
    );
    const trapperOutput = new ChannelOutput(trapper);
    const trapperExit = channelExit(trapper);
    await trapperOutput.waitFor(/ready/);
    trapper.signal("USR1");
    expect(await trapperExit).toEqual({ code: 3, signal: undefined });
    expect(trapperOutput.text).toContain("got USR1");
  });

  it("refuses direct-tcpip to non-loopback destinations and invalid ports", async () => {
    const f = await fixture();
    const connected = await client(f.socketPath);
    const open = (host: string, port: number) =>
      new Promise<void>((resolve, reject) =>
        connected.forwardOut("127.0.0.1", 12345, host, port, (error, channel) => {
          if (error) return reject(error);
          channel.destroy();
          resolve();
        }),
      );
    await expect(open("10.255.255.1", 80)).rejects.toThrow(/administratively prohibited|open failure/i);
    await expect(open("example.com", 443)).rejects.toThrow();
    await expect(open("127.0.0.1", 70000)).rejects.toThrow();
    const refusals = events(f, "SSH:REFUSE [MEDIUM] BLOCKED");
    expect(refusals.map((event) => event.destination)).toEqual([
      "10.255.255.1:80",
      "example.com:443",
      "127.0.0.1:70000",
    ]);
  });

  it("kills the child and survives when a client vanishes mid-transfer", async () => {
    const f = await fixture();
    const sock = net.connect(f.socketPath);
    const connected = await connectClient(f.socketPath, sock);
    connected.on("error", () => {});
    clients.push(connected);
    const channel = await execChannel(connected, "echo $$; exec cat /dev/zero");
    const output = new ChannelOutput(channel);
    const pid = Number((await output.waitFor(/^(\d+)\n/))[1]);
    expect(isAlive(pid)).toBe(true);
    sock.destroy();
    await waitFor(() => !isAlive(pid), 4000, `timed out waiting for pid ${pid} to be killed`);
    expect(await ssh(f, ["sandbox", "echo still serving"])).toMatchObject({
      code: 0,
      stdout: "still serving\n",
    });
  });
});

describe("SandboxSshServer lifecycle", () => {
  it("makes the socket 0600 in a 0700 directory and replaces a stale socket", async () => {
    const dirs = makeFixtureDirs();
    roots.push(dirs.root);
    mkdirSync(join(dirs.root, "run"), { mode: 0o755 });
    // A socket left behind by a process that died without unlinking it.
    const stale = spawnSync(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(dirs.socketPath)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect(stale.signal).toBe("SIGKILL");
    expect(statSync(dirs.socketPath).isSocket()).toBe(true);

    const server = await SandboxSshServer.start({
      socketPath: dirs.socketPath,
      runAsUser: "nobody",
      workdir: dirs.workdir,
      logger: silentLogger(),
    });
    try {
      expect(statSync(dirs.socketPath).mode & 0o777).toBe(0o600);
      expect(statSync(join(dirs.root, "run")).mode & 0o777).toBe(0o700);
      expect((await ssh(dirs, ["sandbox", "true"])).code).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("fails fast with a clear error for an unknown user, a socket in use or a non-socket", async () => {
    const dirs = makeFixtureDirs();
    roots.push(dirs.root);
    const logger = silentLogger();
    const unknown = SandboxSshServer.start({
      socketPath: dirs.socketPath,
      runAsUser: "no-such-user",
      logger,
    });
    await expect(unknown).rejects.toBeInstanceOf(OpenShellError);
    await expect(unknown).rejects.toThrow(
      "sandbox user 'no-such-user' not found in /etc/passwd; create it or pass --run-as-user",
    );

    const live = await startFixture();
    fixtures.push(live);
    await expect(
      SandboxSshServer.start({ socketPath: live.socketPath, runAsUser: "nobody", logger }),
    ).rejects.toThrow(/is in use by another SSH server/);
    expect((await ssh(live, ["sandbox", "true"])).code).toBe(0);

    mkdirSync(join(dirs.root, "run"));
    writeFileSync(dirs.socketPath, "not a socket");
    await expect(
      SandboxSshServer.start({ socketPath: dirs.socketPath, runAsUser: "nobody", logger }),
    ).rejects.toThrow(/is not a socket/);
  });

  it("close() kills running children and leaves no open handles", async () => {
    const before = activeResources();
    const f = await startFixture();
    roots.push(f.root);
    const connected = await connectClient(f.socketPath);
    connected.on("error", () => {});
    const clientClosed = new Promise<void>((resolve) => connected.once("close", () => resolve()));

    const piped = await execChannel(connected, "echo $$; exec sleep 300");
    const pty = await execChannel(connected, "echo $$; exec sleep 300", { pty: { rows: 24, cols: 80 } });
    const pids = await Promise.all(
      [piped, pty].map(async (channel) =>
        Number((await new ChannelOutput(channel).waitFor(/(\d+)\r?\n/))[1]),
      ),
    );
    for (const pid of pids) expect(isAlive(pid)).toBe(true);

    await f.server.close();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await clientClosed;
    expect(() => statSync(f.socketPath)).toThrow();
    // libuv finishes closing handles a loop turn after their close callbacks; a handle left over
    // from an earlier test may also still be closing, so: nothing more than before, eventually.
    const noneAdded = () =>
      Object.entries(activeResources()).every(([type, count]) => count <= (before[type] ?? 0));
    await waitFor(noneAdded, 1000, "timed out waiting for handles to close").catch(() =>
      expect(activeResources()).toEqual(before),
    );
  });
});

async function tcpServer(onConnection: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  tcpServers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("error", reject);
    socket.once("end", () => {
      socket.end();
      const received = Buffer.concat(chunks);
      if (received.length === 0) reject(new Error("connection closed before any echo"));
      else resolve(received);
    });
    socket.once("connect", () => socket.end(payload));
  });
}
