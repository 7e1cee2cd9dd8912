import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type PlatformEvent, PolicyStatus, SandboxPhase, sandboxv1 } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startVmGateway,
} from "@openshell/testing/gateway-harness";
import { pidsOf, waitFor } from "@openshell/testing/process";
import { execOutput, waitForPhase } from "@openshell/testing/sandbox-harness";
import { makeTestPki } from "@openshell/testing/test-pki";
import { afterEach, describe, expect, it } from "vitest";

const READY_TIMEOUT_MS = 180_000;
const MiB = 2 ** 20;

const qemuPidsUnder = (dir: string) => pidsOf(/^qemu-system/, dir);
const qemuArgv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");

/**
 * A bare repository in `dir` with one commit (README: `content`), prepared for git's "dumb" HTTP
 * protocol (`git update-server-info`): plain files any static server can serve.
 */
function makeBareRepo(dir: string, content: string): string {
  const work = join(dir, "work");
  const bare = join(dir, "repo.git");
  const git = (...args: string[]) =>
    execFileSync("git", args, {
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: "t",
        GIT_AUTHOR_EMAIL: "t@example.test",
        GIT_COMMITTER_NAME: "t",
        GIT_COMMITTER_EMAIL: "t@example.test",
        GIT_CONFIG_NOSYSTEM: "1",
        HOME: dir,
      },
    });
  git("init", "-q", "-b", "main", work);
  writeFileSync(join(work, "README"), `${content}\n`);
  git("-C", work, "add", "README");
  git("-C", work, "commit", "-q", "-m", "first");
  git("clone", "-q", "--bare", work, bare);
  git("-C", bare, "update-server-info");
  return bare;
}

/** Bytes the file really occupies on the host (a qcow2 whose clusters were discarded has holes). */
const allocatedBytes = (file: string) => statSync(file).blocks * 512;

/**
 * VM sandboxes through a real gateway (TCG, Node supervisor): what a user sees when a VM is sized,
 * fills and empties its disk, or dies under it.
 */
describe("VM sandbox lifecycle through the gateway", () => {
  const dirs: string[] = [];
  const gateways: RunningGateway[] = [];

  afterEach(async (context) => {
    if (context.task.result?.state === "fail")
      for (const gw of gateways) process.stderr.write(`gateway log:\n${gw.output().slice(-6000)}\n`);
    for (const gw of gateways.splice(0)) await gw.stop("SIGTERM");
    for (const dir of dirs.splice(0)) {
      for (const pid of qemuPidsUnder(dir)) process.kill(pid, "SIGKILL");
      removeStateDir(dir);
    }
  });

  async function vmGateway(): Promise<RunningGateway> {
    const stateDir = makeStateDir();
    dirs.push(stateDir);
    const gw = await startVmGateway({ stateDir });
    gateways.push(gw);
    return gw;
  }

  const exec = async (gw: RunningGateway, sandboxId: string, script: string) => {
    const result = await execOutput(gw.grpc.execSandbox({ sandboxId, command: ["sh", "-c", script] }));
    expect(result, script).toMatchObject({ exitCode: 0 });
    return result.stdout;
  };

  it("honours cpu, memory and disk size; a file deleted in /sandbox gives its space back to the host", async () => {
    const gw = await vmGateway();
    const size = { cpu: "1", memory: "384Mi", "ephemeral-storage": "3Gi" };
    // The restrictive default policy plus /sys read-only: commands are confined by Landlock, and
    // the balloon check below reads /sys.
    const policy = {
      version: 1,
      filesystem: {
        includeWorkdir: true,
        readOnly: ["/usr", "/lib", "/proc", "/dev/urandom", "/etc", "/var/log", "/sys"],
        readWrite: ["/sandbox", "/tmp", "/dev/null"],
      },
      landlock: { compatibility: "best_effort" },
    };
    const created = await gw.grpc.createSandbox({
      name: "sized",
      spec: { template: { resources: { requests: size, limits: size } }, policy },
    });
    const id = created.sandbox?.id as string;
    await waitForPhase(gw, "sized", SandboxPhase.READY, READY_TIMEOUT_MS);
    const [pid] = qemuPidsUnder(gw.stateDir);
    const argv = qemuArgv(pid as number).join(" ");
    expect(argv).toContain("-m 384 -smp 1 ");
    const disk = join(gw.stateDir, "drv", "sandboxes", id, "disk.qcow2");
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "-U", "--output=json", disk], { encoding: "utf8" }),
    );
    expect(info["virtual-size"]).toBe(3 * 1024 * MiB);

    const [cpus, rootBytes] = (await exec(gw, id, "nproc; df -B1 --output=size / | tail -1"))
      .trim()
      .split(/\s+/);
    expect(cpus).toBe("1");
    // The free-page-reporting balloon is bound in the guest (its driver is a module in the initramfs).
    expect(await exec(gw, id, "ls /sys/bus/virtio/drivers/virtio_balloon")).toMatch(/virtio\d+/);
    // The guest grew its filesystem from the image's 2 GiB into the 3 GiB disk.
    expect(Number(rootBytes)).toBeGreaterThan(2.7 * 1024 * MiB);

    const before = allocatedBytes(disk);
    await exec(gw, id, "head -c 300000000 /dev/urandom > /sandbox/big && sync");
    const filled = allocatedBytes(disk);
    expect(filled - before).toBeGreaterThan(250 * MiB);
    await exec(gw, id, "rm /sandbox/big && sync");
    await waitFor(
      () => allocatedBytes(disk) < filled - 250 * MiB,
      30_000,
      () => `the overlay still holds ${allocatedBytes(disk) / MiB} MiB (${filled / MiB} MiB when full)`,
    );
  }, 300_000);

  it("a VM killed with SIGKILL comes back from its disk: READY again, /sandbox intact, the restart in its events", async () => {
    const gw = await vmGateway();
    const created = await gw.grpc.createSandbox({ name: "crashy", spec: {} });
    const id = created.sandbox?.id as string;
    await waitForPhase(gw, "crashy", SandboxPhase.READY, READY_TIMEOUT_MS);
    await exec(gw, id, "echo kept > /sandbox/kept.txt && sync");
    const [first] = qemuPidsUnder(gw.stateDir);

    const events: PlatformEvent[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      const stream = gw.grpc.watchSandbox({ id, followEvents: true, eventTail: 0 }, { signal: abort.signal });
      for await (const event of stream) if (event.payload.case === "event") events.push(event.payload.value);
    })().catch(() => undefined);

    try {
      process.kill(first as number, "SIGKILL");
      await waitFor(
        () => events.some((e) => e.reason === "Restarting"),
        30_000,
        () => `no Restarting event; events: ${events.map((e) => e.reason).join(", ")}`,
      );
      await waitFor(
        () => qemuPidsUnder(gw.stateDir).some((pid) => pid !== first),
        30_000,
        () => "the VM was not started again",
      );
      const catKept = async () =>
        (await execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["cat", "/sandbox/kept.txt"] })))
          .stdout;
      await waitFor(
        () =>
          catKept().then(
            (out) => out === "kept\n",
            () => false,
          ),
        READY_TIMEOUT_MS,
        () => "the restarted sandbox does not answer exec with its /sandbox file",
      );
      await waitForPhase(gw, "crashy", SandboxPhase.READY, 10_000);
    } finally {
      abort.abort();
      await watching;
    }
    const restart = events.find((e) => e.reason === "Restarting");
    expect(restart?.type).toBe("Warning");
    expect(restart?.message).toContain("VM exited unexpectedly (signal SIGKILL); restarting, attempt 1 of 5");
    expect(qemuPidsUnder(gw.stateDir)).toHaveLength(1);
  }, 300_000);

  it("a VM sandbox's network goes only through the policy proxy: allowed host works, others 403, direct connects fail", async () => {
    // Host services the sandbox reaches as 10.0.2.2 (QEMU's alias of the host's loopback).
    const answer = (request: IncomingMessage, response: ServerResponse) =>
      response.end(`hello ${request.url}`);
    const allowed = createServer(answer);
    const other = createServer(answer);
    // An L7 endpoint in audit mode: the method shows whether a denied request was forwarded.
    const audit = createServer((request, response) => response.end(`${request.method} ${request.url}`));
    // An L7 `rest` endpoint over plain HTTP, and one over HTTPS whose certificate the guest cannot
    // verify (the test PKI's CA is not in the guest's trust store; its SANs lack 10.0.2.2).
    const rest = createServer(answer);
    const pkiDir = makeStateDir();
    dirs.push(pkiDir);
    const pki = await makeTestPki(pkiDir);
    const tlsServer = createHttpsServer(
      { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) },
      answer,
    );
    // git over HTTPS: a bare repository served as static files ("dumb" HTTP) with the test PKI's
    // server certificate, whose names include host.openshell.internal (10.0.2.2 in the guest).
    const repo = makeBareRepo(pkiDir, "cloned through the proxy");
    const gitRequests: string[] = [];
    const gitServer = createHttpsServer(
      { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) },
      (request, response) => {
        const path = decodeURIComponent(new URL(request.url ?? "/", "https://x").pathname);
        gitRequests.push(path);
        const file = normalize(join(repo, path.replace(/^\/repo\.git\//, "")));
        if (!path.startsWith("/repo.git/") || !file.startsWith(`${repo}/`) || !existsSync(file)) {
          response.statusCode = 404;
          response.end();
          return;
        }
        response.end(readFileSync(file));
      },
    );
    await new Promise<void>((resolve) => allowed.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => rest.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => audit.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => gitServer.listen(0, "127.0.0.1", resolve));
    const allowedPort = (allowed.address() as AddressInfo).port;
    const otherPort = (other.address() as AddressInfo).port;
    const restPort = (rest.address() as AddressInfo).port;
    const tlsPort = (tlsServer.address() as AddressInfo).port;
    const auditPort = (audit.address() as AddressInfo).port;
    const gitPort = (gitServer.address() as AddressInfo).port;
    try {
      const gw = await vmGateway();
      const policy = create(sandboxv1.SandboxPolicySchema, {
        version: 1,
        filesystem: {
          includeWorkdir: true,
          readOnly: ["/usr", "/lib", "/proc", "/dev/urandom", "/etc", "/opt/openshell/node"],
          readWrite: ["/sandbox", "/tmp", "/dev/null"],
        },
        landlock: { compatibility: "best_effort" },
        process: { runAsUser: "sandbox", runAsGroup: "sandbox" },
        networkPolicies: {
          host_api: {
            name: "host-api",
            endpoints: [{ host: "10.0.2.2", port: allowedPort, ports: [allowedPort] }],
            binaries: [{ path: "/usr/bin/curl" }],
          },
          host_rest: {
            name: "host-rest",
            endpoints: [restPort, tlsPort].map((port) => ({
              host: "10.0.2.2",
              port,
              ports: [port],
              protocol: "rest",
              enforcement: "enforce",
              rules: [{ allow: { method: "GET", path: "/repos/**" } }],
            })),
            binaries: [{ path: "/usr/bin/curl" }],
          },
          host_audit: {
            name: "host-audit",
            endpoints: [
              {
                host: "10.0.2.2",
                port: auditPort,
                ports: [auditPort],
                protocol: "rest",
                enforcement: "audit",
                rules: [{ allow: { method: "GET", path: "/repos/**" } }],
              },
            ],
            binaries: [{ path: "/usr/bin/curl" }],
          },
          // Private destinations named by host name or as the metadata address (SSRF, §3.8).
          host_alias: {
            name: "host-alias",
            endpoints: [
              { host: "host.openshell.internal", port: allowedPort, ports: [allowedPort] },
              { host: "169.254.169.254", port: 80, ports: [80] },
            ],
            binaries: [{ path: "/usr/bin/curl" }],
          },
          // git only: git-remote-https, its child (a link to git-remote-http, the name the proxy
          // sees), matches through its ancestor /usr/bin/git.
          host_git: {
            name: "host-git",
            endpoints: [
              { host: "host.openshell.internal", port: gitPort, ports: [gitPort], allowedIps: ["10.0.2.2"] },
            ],
            binaries: [{ path: "/usr/bin/git" }],
          },
        },
      });
      const created = await gw.grpc.createSandbox({ name: "proxied", spec: { policy } });
      const id = created.sandbox?.id as string;
      await waitForPhase(gw, "proxied", SandboxPhase.READY, READY_TIMEOUT_MS);
      const run = async (script: string) =>
        execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sh", "-c", script] }));
      const curl = "curl -sS -m 20 -w ' %{http_code}'";
      // The child environment names the proxy (§3.7).
      expect((await run("echo $HTTP_PROXY $NO_PROXY")).stdout.trim()).toBe(
        "http://10.200.0.1:3128 127.0.0.1,localhost,::1",
      );
      // Absolute-form (forward) and CONNECT to the allowed host service.
      expect((await run(`${curl} http://10.0.2.2:${allowedPort}/fwd`)).stdout).toBe("hello /fwd 200");
      expect((await run(`${curl} -p http://10.0.2.2:${allowedPort}/tunnel`)).stdout).toBe(
        "hello /tunnel 200",
      );
      // L7 (§3.8): the CA variables name the sandbox CA's files, readable by the sandbox user.
      expect(
        (await run("echo $SSL_CERT_FILE $NODE_EXTRA_CA_CERTS; test -r $CURL_CA_BUNDLE && echo readable"))
          .stdout,
      ).toBe("/etc/openshell-tls/ca-bundle.pem /etc/openshell-tls/openshell-ca.pem\nreadable\n");
      // An enforce rule: GET allowed, POST 403 with upstream's body and X-OpenShell-Policy.
      expect((await run(`${curl} http://10.0.2.2:${restPort}/repos/a`)).stdout).toBe("hello /repos/a 200");
      const post = await run(`curl -sS -m 20 -i -X POST -p http://10.0.2.2:${restPort}/repos/a`);
      expect(post.stdout).toMatch(/HTTP\/1\.1 403 Forbidden\r\n[\s\S]*X-OpenShell-Policy: host_rest\r\n/);
      expect(post.stdout).toContain('{"error":"policy_denied","policy":"host_rest","rule":"POST /repos/a"');
      // HTTPS: curl trusts the proxy's leaf for 10.0.2.2 through CURL_CA_BUNDLE; the proxy's own
      // check of the server fails (its CA is not the guest's), so curl gets the 502 that says so.
      const tls = await run(`${curl} https://10.0.2.2:${tlsPort}/repos/a`);
      expect(tls.stdout, tls.stderr).toMatch(/^upstream TLS to 10\.0\.2\.2:\d+ failed: .* 502$/s);
      // An audit endpoint: a request the rules deny is logged and forwarded, in the absolute form
      // (decided by the forward path) and inside a CONNECT tunnel (the L7 stage's request loop).
      expect((await run(`${curl} -X DELETE http://10.0.2.2:${auditPort}/repos/a`)).stdout).toBe(
        "DELETE /repos/a 200",
      );
      expect((await run(`${curl} -X POST -p http://10.0.2.2:${auditPort}/other`)).stdout).toBe(
        "POST /other 200",
      );
      expect((await run(`${curl} -p http://10.0.2.2:${auditPort}/repos/b`)).stdout).toBe("GET /repos/b 200");
      // SSRF: the metadata address is refused although the policy names it (always blocked), and a
      // name that resolves to a private address (host.openshell.internal is 10.0.2.2 in the
      // guest's /etc/hosts) is refused while its endpoint has no allowed_ips.
      expect((await run(`${curl} http://169.254.169.254/latest/meta-data/`)).stdout).toBe(
        '{"error":"ssrf_denied","detail":"CONNECT 169.254.169.254:80 blocked: internal address"} 403',
      );
      expect((await run(`${curl} http://host.openshell.internal:${allowedPort}/alias`)).stdout).toBe(
        `{"error":"ssrf_denied","detail":"CONNECT host.openshell.internal:${allowedPort} blocked: internal address"} 403`,
      );
      // git over HTTPS through the proxy: the test CA goes into /sandbox for GIT_SSL_CAINFO.
      const ca = readFileSync(pki.ca).toString("base64");
      expect((await run(`echo ${ca} | base64 -d > /sandbox/ca.pem && echo ok`)).stdout).toBe("ok\n");
      const gitUrl = `https://host.openshell.internal:${gitPort}/repo.git`;
      const clone = await run(
        `GIT_SSL_CAINFO=/sandbox/ca.pem git clone -q ${gitUrl} /tmp/clone && cat /tmp/clone/README && git -C /tmp/clone log --format=%s`,
      );
      expect(clone.stdout, clone.stderr).toBe("cloned through the proxy\nfirst\n");
      expect(gitRequests).toContain("/repo.git/info/refs");
      // The git host's rule names git only: curl and python3 get the proxy's 403 on CONNECT.
      const served = gitRequests.length;
      expect(
        (await run(`curl -sS -m 20 --cacert /sandbox/ca.pem -w '%{http_connect}' ${gitUrl}/HEAD`)).stdout,
      ).toBe("403");
      const pythonGit = await run(
        `python3 -c 'import ssl, urllib.request as u; u.urlopen("${gitUrl}/HEAD", context=ssl.create_default_context(cafile="/sandbox/ca.pem"))' 2>&1 | grep -m1 -o 'Tunnel connection failed: 403 Forbidden'`,
      );
      expect(pythonGit.stdout.trim(), pythonGit.stderr).toBe("Tunnel connection failed: 403 Forbidden");
      expect(gitRequests).toHaveLength(served);
      // Another port of the same host: not in the policy.
      expect((await run(`${curl} http://10.0.2.2:${otherPort}/`)).stdout).toBe(
        `{"error":"policy_denied","detail":"CONNECT 10.0.2.2:${otherPort} not permitted by policy"} 403`,
      );
      // Another binary than curl: denied.
      const python = await run(
        `python3 -c 'import urllib.request as u; u.urlopen("http://10.0.2.2:${allowedPort}/py")' 2>&1 | grep -o 'HTTP Error 403: Forbidden'`,
      );
      expect(python.stdout.trim(), python.stderr).toBe("HTTP Error 403: Forbidden");
      // A policy change (python3 added to the rule) applies to the next connection once LOADED.
      const current = (await gw.grpc.getSandboxPolicyStatus({ name: "proxied", version: 0 })).revision;
      const changed = create(sandboxv1.SandboxPolicySchema, current?.policy);
      changed.networkPolicies.host_api?.binaries.push(
        create(sandboxv1.NetworkBinarySchema, { path: "/usr/bin/python3*" }),
      );
      // ... and allowed_ips for host.openshell.internal.
      const alias = changed.networkPolicies.host_alias?.endpoints[0];
      if (alias) alias.allowedIps = ["10.0.2.2"];
      const { version } = await gw.grpc.updateConfig({ name: "proxied", policy: changed });
      await waitFor(
        async () =>
          (await gw.grpc.getSandboxPolicyStatus({ name: "proxied", version })).revision?.status ===
          PolicyStatus.LOADED,
        30_000,
        `policy version ${version} was not LOADED`,
      );
      const allowedPython = await run(
        `python3 -c 'import urllib.request as u; print(u.urlopen("http://10.0.2.2:${allowedPort}/py").read().decode())'`,
      );
      expect(allowedPython.stdout.trim(), allowedPython.stderr).toBe("hello /py");
      expect((await run(`${curl} http://host.openshell.internal:${allowedPort}/alias`)).stdout).toBe(
        "hello /alias 200",
      );
      // A connect that ignores the proxy fails at once (connection refused), and is logged.
      const direct = await run(
        `curl -sS -m 20 --noproxy '*' http://10.0.2.2:${allowedPort}/; echo " exit=$?"`,
      );
      expect(direct.stdout.trim()).toBe("exit=7");
      // The proxy's and the bypass monitor's events reach the gateway's log of the sandbox.
      const sandboxLog = async () =>
        (await gw.grpc.getSandboxLogs({ sandboxId: id, lines: 1000 })).logs
          .map((line) => line.message)
          .join("\n");
      await waitFor(
        async () => (await sandboxLog()).includes("bypass attempt tcp 10.200.0.2"),
        10_000,
        "no bypass event in the sandbox's log",
      );
      const text = await sandboxLog();
      expect(text).toContain("NET:OPEN [INFO] ALLOWED curl(");
      expect(text).toMatch(/NET:REFUSE \[MEDIUM\] BLOCKED python3[.\d]*\(\d+\) -> 10\.0\.2\.2/);
      expect(text).toMatch(
        /HTTP:POST \[MEDIUM\] BLOCKED curl\(\d+\) -> POST http:\/\/10\.0\.2\.2:\d+\/repos\/a \[policy:host-rest/,
      );
      for (const [method, path] of [
        ["DELETE", "/repos/a"],
        ["POST", "/other"],
      ])
        expect(text).toMatch(
          new RegExp(
            `HTTP:${method} \\[LOW\\] ALLOWED curl\\(\\d+\\) -> ${method} http://10\\.0\\.2\\.2:${auditPort}${path} \\[policy:host-audit reason:${method} ${path} not permitted by policy mode:audit audit:forwarded\\]`,
          ),
        );
      expect(text).toContain(
        "[policy:host-alias reason:ssrf: 169.254.169.254 resolves to internal address 169.254.169.254, connection rejected]",
      );
      expect(text).toMatch(
        /NET:OPEN \[INFO\] ALLOWED git-remote-http\(\d+\) -> host\.openshell\.internal:\d+ \[policy:host-git/,
      );
    } finally {
      allowed.close();
      other.close();
      rest.close();
      tlsServer.close();
      audit.close();
      gitServer.close();
    }
  }, 300_000);
});
