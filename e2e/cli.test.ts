import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CLI,
  CliSandboxUser,
  checkSshConfig,
  checkUploadDownload,
  sha256,
} from "@openshell/testing/cli-harness";
import { freePort, waitFor } from "@openshell/testing/process";
import { afterAll, afterEach, describe, expect, it } from "vitest";

/**
 * The `openshell` CLI end to end: the built binary, a local gateway it starts itself (VM driver,
 * mTLS), real QEMU sandboxes, real OpenSSH. One user walks through the whole flow in order.
 */
/** A test that boots a microVM sandbox: TCG on a loaded 2-core host can take minutes (CI: over 60 s). */
const VM_TEST_MS = 240_000;

describe("openshell CLI", () => {
  let port = 0;
  let user: CliSandboxUser;

  afterEach((context) => user?.showLogOnFailure(context.task.result?.state));
  afterAll(async () => user?.dispose());

  it("status with no gateway says how to get one", async () => {
    port = await freePort();
    user = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(port) });
    const status = await user.run(["status"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("No gateway configured");
    expect(status.stdout).toContain("openshell gateway start");
  });

  it("rejects bad input before touching any gateway", async () => {
    const badEnv = await user.run(["sandbox", "create", "--env", "1BAD=x", "--", "true"]);
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain("bad --env '1BAD=x'");
    const noPolicy = await user.run(["sandbox", "create", "--policy", join(user.root, "missing.yaml")]);
    expect(noPolicy.code).toBe(4);
    expect(noPolicy.stderr).toMatch(/policy file .*missing\.yaml' does not exist/);
    const badYaml = join(user.root, "bad.yaml");
    writeFileSync(badYaml, "version: 1\nfilesystem: [unclosed\n");
    const yaml = await user.run(["sandbox", "create", "--policy", badYaml]);
    expect(yaml.code).toBe(2);
    expect(yaml.stderr).toMatch(/bad\.yaml:\d+: invalid YAML/);
    const noDocker = await user.run(["gateway", "start", "--docker"], {
      env: { DOCKER_HOST: `unix://${join(user.root, "no-docker.sock")}` },
    });
    expect(noDocker.code).toBe(3);
    expect(noDocker.stderr).toContain("Docker is not running");
    expect(noDocker.stderr).toContain("DOCKER_HOST");
    expect(noDocker.stderr).toContain("docker info");
    const unknown = await user.run(["sandbox", "frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command");
    expect(user.gatewayPid()).toBeUndefined();
  });

  it("create -- CMD bootstraps a local gateway and prints the command's output", async () => {
    const result = await user.run(["sandbox", "create", "--name", "first", "--", "echo", "smoke-ok"]);
    expect(result.stderr).toContain("No gateway found — starting one automatically.");
    expect(result.stderr).toContain("Created sandbox: first");
    for (const step of ["Booting: VM started", "GuestReady: guest init ready", "SupervisorStarted"])
      expect(result.stderr).toContain(step);
    expect(result.stdout).toContain("smoke-ok");
    expect(result.code).toBe(0);
    const metadata = JSON.parse(
      readFileSync(join(user.configDir, "gateways", "openshell", "metadata.json"), "utf8"),
    );
    expect(metadata).toMatchObject({
      name: "openshell",
      gateway_endpoint: `https://127.0.0.1:${port}`,
      is_remote: false,
    });
    expect(readFileSync(join(user.configDir, "active_gateway"), "utf8").trim()).toBe("openshell");
    for (const file of ["ca.crt", "tls.crt", "tls.key"])
      expect(existsSync(join(user.configDir, "gateways", "openshell", "mtls", file))).toBe(true);
  });

  it("gateway start on a running gateway says so and exits 0; status reports it", async () => {
    const again = await user.run(["gateway", "start"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("already running");
    const status = await user.run(["status"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/Status:\s+Connected/);
    const json = JSON.parse((await user.run(["status", "-o", "json"])).stdout);
    expect(json).toMatchObject({ gateway: "openshell", status: "Connected", driver: "vm", sandboxes: 1 });
  });

  it("gateway status, info, list, add, select and forgetting a registered gateway", async () => {
    const status = JSON.parse((await user.run(["gateway", "status", "-o", "json"])).stdout);
    expect(status).toMatchObject({ gateway: "openshell", status: "Connected", deployment: "process" });
    expect(status.pid).toBe(user.gatewayPid());
    const info = JSON.parse((await user.run(["gateway", "info", "-o", "json"])).stdout);
    expect(info).toMatchObject({ name: "openshell", active: true, state_dir: user.gatewayStateDir() });

    const added = await user.run(["gateway", "add", "http://127.0.0.1:9", "--name", "elsewhere"]);
    expect(added.code, added.stderr).toBe(0);
    const listed = JSON.parse((await user.run(["gateway", "list", "-o", "json"])).stdout);
    expect(listed).toMatchObject([
      { name: "elsewhere", active: true, deployment: "registered" },
      { name: "openshell", active: false, running: true },
    ]);
    const unreachable = await user.run(["sandbox", "list"]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain("Gateway 'elsewhere' (http://127.0.0.1:9) is not reachable");
    expect(
      (await user.run(["gateway", "add", "http://127.0.0.1:10", "--name", "elsewhere"])).stderr,
    ).toContain("already exists");
    expect((await user.run(["-g", "openshell", "sandbox", "list", "--names"])).stdout).toContain("first");
    expect((await user.run(["gateway", "select", "nope"])).code).toBe(4);
    expect((await user.run(["gateway", "select", "openshell"])).code).toBe(0);
    const forgotten = await user.run(["gateway", "destroy", "--name", "elsewhere"]);
    expect(forgotten.stderr).toContain("forgotten");
    expect(JSON.parse((await user.run(["gateway", "list", "-o", "json"])).stdout)).toHaveLength(1);
  });

  it("list and get, as text and JSON", async () => {
    expect((await user.run(["sandbox", "list", "--names"])).stdout.split("\n")).toContain("first");
    const listed = JSON.parse((await user.run(["sandbox", "list", "-o", "json"])).stdout);
    expect(listed.map((s: { name: string }) => s.name)).toEqual(["first"]);
    const got = JSON.parse((await user.run(["sandbox", "get", "first", "-o", "json"])).stdout);
    expect(got).toMatchObject({ name: "first", phase: "SANDBOX_PHASE_READY" });
  });

  it("exec passes stdin through and returns the remote exit code; NAME defaults to the last used", async () => {
    const failing = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      "echo out; echo err >&2; exit 3",
    ]);
    expect(failing).toMatchObject({ code: 3, stdout: "out\n" });
    expect(failing.stderr).toContain("err");
    const piped = await user.run(["sandbox", "exec", "--", "tr", "a-z", "A-Z"], { input: "hello sandbox\n" });
    expect(piped.stderr).toContain("Using sandbox 'first' (last used)");
    expect(piped).toMatchObject({ code: 0, stdout: "HELLO SANDBOX\n" });
    const workdir = await user.run(["sandbox", "exec", "first", "--workdir", "/tmp", "--", "pwd"]);
    expect(workdir.stdout).toBe("/tmp\n");
    const timedOut = await user.run(["sandbox", "exec", "first", "--timeout", "1", "--", "sleep", "30"]);
    expect(timedOut.code).toBe(124);
  });

  it("stop ends the VM (saved into its memory snapshot) and start brings it back with its processes and /sandbox intact; exec meanwhile says how to start it", async () => {
    const wrote = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      "echo survived > /sandbox/kept.txt",
    ]);
    expect(wrote.code, wrote.stderr).toBe(0);
    // A detached loop: the VM's memory snapshot brings the same process back after start.
    const loop = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      "setsid sh -c 'echo $$ > /sandbox/loop.pid; while :; do date +%s%N > /sandbox/tick; sleep 0.2; done' </dev/null >/dev/null 2>&1 & sleep 1; cat /sandbox/loop.pid",
    ]);
    expect(loop.code, loop.stderr).toBe(0);
    const loopPid = loop.stdout.trim();
    expect(loopPid).toMatch(/^\d+$/);
    const stopped = await user.run(["sandbox", "stop", "first"]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain("Stopped sandbox 'first'");
    expect(user.qemuPids()).toEqual([]);
    expect((await user.run(["sandbox", "list"])).stdout).toMatch(/^first\s+Stopped\s/m);
    const got = JSON.parse((await user.run(["sandbox", "get", "first", "-o", "json"])).stdout);
    expect(got.phase).toBe("SANDBOX_PHASE_STOPPED");
    // The snapshot's size and the disk in use (int64: strings in proto JSON).
    expect(Number(got.status.storage.memorySnapshotBytes)).toBeGreaterThan(10 * 2 ** 20);
    expect(Number(got.status.storage.diskBytes)).toBeGreaterThan(0);
    expect((await user.run(["sandbox", "get", "first"])).stdout).toMatch(
      /^Storage:\s+disk [\d.]+ MiB, memory snapshot \d+ MiB on the gateway's host$/m,
    );
    const refused = await user.run(["sandbox", "exec", "first", "--", "true"]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(
      "sandbox first is stopped; start it with: openshell sandbox start first",
    );
    expect((await user.run(["sandbox", "stop", "first"])).code).toBe(0);

    const started = await user.run(["sandbox", "start", "first", "-o", "json"]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain("Sandbox 'first' is ready");
    expect(JSON.parse(started.stdout)).toMatchObject({ name: "first", phase: "SANDBOX_PHASE_READY" });
    // The snapshot is gone once restored (its disk diverges from it).
    expect(JSON.parse(started.stdout).status.storage.memorySnapshotBytes).toBeUndefined();
    expect(user.qemuPids()).toHaveLength(1);
    const read = await user.run(["sandbox", "exec", "first", "--", "cat", "/sandbox/kept.txt"]);
    expect(read).toMatchObject({ code: 0, stdout: "survived\n" });
    const tick = async () =>
      (await user.run(["sandbox", "exec", "first", "--", "cat", "/sandbox/tick"])).stdout.trim();
    const before = await tick();
    await waitFor(
      async () => (await tick()) !== before,
      30_000,
      () => "the loop did not go on after start",
    );
    const alive = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      `test -d /proc/${loopPid} && echo alive`,
    ]);
    expect(alive.stdout).toBe("alive\n");
    expect((await user.run(["sandbox", "start", "first"])).stderr).toContain("Sandbox 'first' is ready");
  }, 300_000);

  it(
    "fork copies a running sandbox into a new one with its files but not its processes; both work on independently",
    async () => {
      const forked = await user.run(["sandbox", "fork", "first", "--name", "twin"]);
      expect(forked.code, forked.stderr).toBe(0);
      expect(forked.stdout.trim()).toBe("twin");
      expect(forked.stderr).toContain("copied from sandbox first");
      expect(user.qemuPids()).toHaveLength(2);
      const exec = async (name: string, script: string) => {
        const result = await user.run(["sandbox", "exec", name, "--", "sh", "-c", script]);
        expect(result.code, `${name}: ${script}: ${result.stderr}`).toBe(0);
        return result.stdout.trim();
      };
      expect(await exec("twin", "cat /sandbox/kept.txt")).toBe("survived");
      // The loop started in `first` (previous test) goes on there and was not copied.
      const tick = await exec("twin", "cat /sandbox/tick");
      const firstTick = await exec("first", "cat /sandbox/tick");
      await waitFor(
        async () => (await exec("first", "cat /sandbox/tick")) !== firstTick,
        30_000,
        () => "the loop in first stopped",
      );
      expect(await exec("twin", "cat /sandbox/tick")).toBe(tick);
      await exec("twin", "echo mine > /sandbox/twin.txt");
      expect(await exec("first", "test -e /sandbox/twin.txt && echo there || echo absent")).toBe("absent");
      const deleted = await user.run(["sandbox", "delete", "twin"]);
      expect(deleted.code, deleted.stderr).toBe(0);
      await waitFor(
        async () => user.qemuPids().length === 1,
        60_000,
        () => "the fork's VM is still running",
      );
      expect(await exec("first", "cat /sandbox/kept.txt")).toBe("survived");
    },
    VM_TEST_MS,
  );

  it(
    "a memory snapshot made by another runtime is not restored: start boots the disk instead, says why, and the files are there",
    async () => {
      const id = JSON.parse((await user.run(["sandbox", "get", "first", "-o", "json"])).stdout).id as string;
      const stopped = await user.run(["sandbox", "stop", "first"]);
      expect(stopped.code, stopped.stderr).toBe(0);
      const record = execFileSync("find", [user.root, "-path", `*/sandboxes/${id}/snapshot.json`], {
        encoding: "utf8",
      }).trim();
      expect(record, "the stopped sandbox's snapshot record").not.toBe("");
      const meta = JSON.parse(readFileSync(record, "utf8"));
      meta.fingerprint.runtimeKey = "0000000000000000";
      writeFileSync(record, JSON.stringify(meta));
      const started = await user.run(["sandbox", "start", "first"]);
      expect(started.code, started.stderr).toBe(0);
      expect(started.stderr).toContain(
        'memory snapshot cannot be restored (it was made with runtimeKey "0000000000000000"',
      );
      const read = await user.run(["sandbox", "exec", "first", "--", "cat", "/sandbox/kept.txt"]);
      expect(read).toMatchObject({ code: 0, stdout: "survived\n" });
      // A cold boot: the loop started before the stop is not running any more.
      const loop = await user.run([
        "sandbox",
        "exec",
        "first",
        "--",
        "sh",
        "-c",
        "pid=$(cat /sandbox/loop.pid); test -d /proc/$pid && grep -q while /proc/$pid/cmdline && echo alive || echo gone",
      ]);
      expect(loop.stdout).toBe("gone\n");
    },
    VM_TEST_MS,
  );

  it("connect and exec --tty give an interactive terminal (driven through script(1))", async () => {
    const cli = `${process.execPath} ${CLI}`;
    const shell = spawnSync("script", ["-qec", `${cli} sandbox connect first`, "/dev/null"], {
      env: user.env,
      input: "echo connected-$((6*7)); tty\nexit 3\n",
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(shell.status, shell.stderr).toBe(3);
    expect(shell.stdout).toContain("connected-42");
    expect(shell.stdout).toMatch(/\/dev\/pts\/\d+/);
    const tty = execFileSync(
      "script",
      ["-qec", `${cli} sandbox exec first --tty -- sh -c 'tty; read x; echo got-$x'`, "/dev/null"],
      {
        env: user.env,
        input: "typed\n",
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    expect(tty).toMatch(/\/dev\/pts\/\d+/);
    expect(tty).toContain("got-typed");
  });

  it("ssh-config works with a real `ssh -F`", async () => {
    const config = await checkSshConfig(user, "first", "via-ssh-config");
    expect(config.text).toContain("Host openshell-first");
    expect(config.text).toContain("ServerAliveInterval 15");
  });

  it("rsync over `ssh -F` with the ssh-config copies a tree into the sandbox", async () => {
    const local = mkdtempSync(join(user.root, "rsync-"));
    mkdirSync(join(local, "sub"));
    writeFileSync(join(local, "a.txt"), "alpha\n");
    writeFileSync(join(local, "sub", "b.bin"), randomBytes(256 * 1024));
    const config = join(user.root, "ssh_config"); // written by the ssh-config test
    execFileSync(
      "rsync",
      ["-a", "-e", `ssh -F ${config}`, `${local}/`, "openshell-first:/sandbox/rsynced/"],
      {
        env: user.env,
        timeout: 120_000,
      },
    );
    const listing = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      "cd /sandbox/rsynced && cat a.txt && sha256sum sub/b.bin",
    ]);
    expect(listing.stdout).toBe(`alpha\n${sha256(join(local, "sub", "b.bin"))}  sub/b.bin\n`);
  });

  it("upload honours .gitignore and download brings the same bytes back", async () => {
    const { back } = await checkUploadDownload(user, "first", {
      blobBytes: 3 * 1024 * 1024,
      extraFiles: { "debug.log": "ignored\n", ".gitignore": "*.log\n" },
    });
    const listing = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      "cd /sandbox/project && find . -type f | sort",
    ]);
    expect(listing.stdout.split("\n").filter(Boolean)).toEqual(["./.gitignore", "./a.txt", "./sub/blob.bin"]);
    expect(existsSync(join(back, "debug.log"))).toBe(false);

    const missing = await user.run(["sandbox", "download", "first", "/sandbox/nope", back]);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain("/sandbox/nope");
  });

  it("forward reaches a server inside the sandbox, in the background, until stopped", async () => {
    const serverPort = await freePort();
    const server = await user.run([
      "sandbox",
      "exec",
      "first",
      "--",
      "sh",
      "-c",
      `mkdir -p /sandbox/www && echo forwarded-ok > /sandbox/www/index.html && cd /sandbox/www && setsid -f python3 -m http.server ${serverPort} --bind 127.0.0.1 >/dev/null 2>&1`,
    ]);
    expect(server.code, server.stderr).toBe(0);
    await waitFor(
      async () =>
        (
          await user.run([
            "sandbox",
            "exec",
            "first",
            "--",
            "sh",
            "-c",
            `curl -sf http://127.0.0.1:${serverPort}/`,
          ])
        ).code === 0,
      30_000,
      () => "timed out waiting for the server in the sandbox",
    );
    const forward = await user.run(["sandbox", "forward", "first", String(serverPort), "--background"]);
    expect(forward.code, forward.stderr).toBe(0);
    const body = await (await fetch(`http://127.0.0.1:${serverPort}/index.html`)).text();
    expect(body).toBe("forwarded-ok\n");
    const listed = JSON.parse((await user.run(["forward", "list", "-o", "json"])).stdout);
    expect(listed).toMatchObject([{ sandbox: "first", port: serverPort, alive: true }]);
    expect((await user.run(["forward", "stop", String(serverPort)])).code).toBe(0);
    await waitFor(
      async () =>
        fetch(`http://127.0.0.1:${serverPort}/`).then(
          () => false,
          () => true,
        ),
      10_000,
      () => "timed out waiting for the forward to stop",
    );
  });

  it("logs prints the sandbox's log lines", async () => {
    const logs = await user.run(["logs", "first", "-n", "50"]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout.split("\n").filter(Boolean).length).toBeGreaterThan(0);
    const json = await user.run(["logs", "first", "-o", "json", "--source", "sandbox"]);
    for (const line of json.stdout.split("\n").filter(Boolean))
      expect(JSON.parse(line)).toHaveProperty("message");
    const bad = await user.run(["logs", "first", "--since", "yesterday"]);
    expect(bad.code).toBe(2);
    const tail = user.start(["logs", "first", "--tail", "-n", "5"]);
    await waitFor(
      () => tail.output().stdout.length > 0,
      30_000,
      () => "no lines from logs --tail",
    );
    tail.child.kill("SIGINT");
    expect((await tail.done).code).toBe(0);
  });

  it("completion scripts come from the binary", async () => {
    const script = await user.run(["completion", "bash"]);
    const file = join(user.root, "completion.bash");
    writeFileSync(file, script.stdout);
    const offered = execFileSync(
      "bash",
      [
        "-c",
        `source ${file}; COMP_WORDS=(openshell sandbox cr); COMP_CWORD=2; _openshell; printf "%s\\n" "\${COMPREPLY[@]}"`,
      ],
      { encoding: "utf8" },
    );
    expect(offered.split("\n")).toContain("create");
    expect((await user.run(["completion", "fish"])).stdout).toContain("complete -c openshell");
    expect((await user.run(["completion", "tcsh"])).code).toBe(2);
  });

  it(
    "unknown sandboxes and sandboxes that are not ready get clear errors",
    async () => {
      const unknown = await user.run(["sandbox", "exec", "nope", "--", "true"]);
      expect(unknown.code).toBe(4);
      expect(unknown.stderr).toContain("sandbox 'nope' not found");
      const get = await user.run(["sandbox", "get", "nope"]);
      expect(get.code).toBe(4);

      const policy = join(user.root, "policy.yaml");
      const filesystem =
        "version: 1\nfilesystem_policy:\n  read_only: [/usr]\n  read_write: [/sandbox, /tmp]\n";
      writeFileSync(policy, filesystem);
      const creating = user.start(["sandbox", "create", "--name", "second", "--policy", policy]);
      await waitFor(
        async () => creating.output().stderr.includes("Created sandbox: second"),
        30_000,
        () => "timed out waiting for the second sandbox to be created",
      );
      const early = await user.run(["sandbox", "exec", "second", "--", "true"]);
      expect(early.code).toBe(5);
      expect(early.stderr).toContain("sandbox 'second' is not ready (phase: Provisioning");
      const created = await creating.done;
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout.trim()).toBe("second");
      const stored = JSON.parse((await user.run(["sandbox", "get", "second", "-o", "json"])).stdout);
      // The gateway stores the policy with upstream's default process identity filled in.
      expect(stored.spec.policy).toEqual({
        version: 1,
        filesystem: { readOnly: ["/usr"], readWrite: ["/sandbox", "/tmp"] },
        process: { runAsUser: "sandbox", runAsGroup: "sandbox" },
      });

      // A new policy version reaches the microVM's supervisor, which loads it and says so. First the
      // supervisor's start-up sync (it may add baseline paths as a version of its own) has to be done.
      await waitFor(
        async () => {
          const status = await user.run(["policy", "get", "second", "-o", "json"]);
          return status.code === 0 && JSON.parse(status.stdout).active_version > 0;
        },
        60_000,
        () => "timed out waiting for the start-up policy of 'second' to be loaded",
      );
      const next = join(user.root, "policy-next.yaml");
      writeFileSync(
        next,
        `${filesystem}network_policies:\n  api:\n    endpoints:\n      - { host: api.example.com, port: 443 }\n`,
      );
      const set = await user.run(["policy", "set", "second", "--policy", next, "--wait"]);
      expect(set.code, set.stderr).toBe(0);
      const loaded = /Policy version (\d+) loaded \(active version: (\d+)\)/.exec(set.stderr);
      expect(loaded, set.stderr).not.toBeNull();
      expect(loaded?.[2]).toBe(loaded?.[1]);
      expect(set.stderr).toContain(`Policy version ${loaded?.[1]} submitted`);
      const full = await user.run(["policy", "get", "second", "--full"]);
      expect(full.stdout).toMatch(/Status: +loaded/);
      expect(full.stdout).toContain("host: api.example.com");
    },
    VM_TEST_MS,
  );

  it(
    "create on a terminal without CMD opens a shell; --no-keep deletes the sandbox when it exits",
    async () => {
      const session = spawnSync(
        "script",
        ["-qec", `${process.execPath} ${CLI} sandbox create --name shell --no-keep`, "/dev/null"],
        { env: user.env, input: "echo interactive-$((40+2))\nexit\n", encoding: "utf8", timeout: 240_000 },
      );
      expect(session.status, session.stdout).toBe(0);
      expect(session.stdout).toContain("interactive-42");
      expect(session.stdout).toContain("Deleted sandbox 'shell'");
      expect((await user.run(["sandbox", "list", "--names"])).stdout.split("\n")).not.toContain("shell");
    },
    VM_TEST_MS,
  );

  it(
    "--no-keep deletes the sandbox after the command",
    async () => {
      const qemuBefore = user.qemuPids().length;
      const result = await user.run([
        "sandbox",
        "create",
        "--name",
        "temp",
        "--no-keep",
        "--",
        "echo",
        "bye",
      ]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain("bye");
      expect((await user.run(["sandbox", "list", "--names"])).stdout.split("\n")).not.toContain("temp");
      await waitFor(
        async () => user.qemuPids().length === qemuBefore,
        30_000,
        () => "timed out waiting for temp's VM to stop",
      );
    },
    VM_TEST_MS,
  );

  it("delete removes sandboxes and their VMs; deleting an unknown one exits 4", async () => {
    const deleted = await user.run(["sandbox", "delete", "--all"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await user.run(["sandbox", "list", "-o", "json"])).stdout.trim()).toBe("[]");
    await waitFor(
      async () => user.qemuPids().length === 0,
      30_000,
      () => "timed out waiting for no qemu",
    );
    expect((await user.run(["sandbox", "delete", "first"])).code).toBe(4);
  });

  it("a stopped gateway gets a message that says how to start it; create starts it again; destroy leaves nothing", async () => {
    const stop = await user.run(["gateway", "stop"]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(user.gatewayPid()).toBeUndefined();
    const down = await user.run(["sandbox", "list"]);
    expect(down.code).toBe(3);
    expect(down.stderr).toContain("is not reachable");
    expect(down.stderr).toContain("openshell gateway start");
    const status = await user.run(["status"]);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain("Disconnected");

    const back = await user.run([
      "sandbox",
      "create",
      "--name",
      "back",
      "--no-keep",
      "--",
      "echo",
      "gateway-back",
    ]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stderr).toContain("Gateway 'openshell' is not running — starting it.");
    expect(back.stdout).toContain("gateway-back");
    const destroy = await user.run(["gateway", "destroy", "--yes"]);
    expect(destroy.code, destroy.stderr).toBe(0);
    expect(existsSync(user.gatewayStateDir())).toBe(false);
    expect(existsSync(join(user.configDir, "gateways", "openshell"))).toBe(false);
    expect(user.qemuPids()).toEqual([]);
  });
});
