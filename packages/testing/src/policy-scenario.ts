/**
 * Policy enforcement in a real sandbox, the same scenario for every compute driver (the supervisor
 * is the same): host services the sandbox reaches through the policy proxy, a policy naming them,
 * and what the sandbox must see. The drivers differ only in the host's address as the sandbox sees
 * it: QEMU's 10.0.2.2 (an alias of the host's loopback) for a VM, the bridge network's gateway
 * address (what `host.openshell.internal` names) for a Docker container.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { create } from "@bufbuild/protobuf";
import { PolicyStatus, sandboxv1 } from "@openshell/proto";
import { expect } from "vitest";
import type { RunningGateway } from "./gateway-harness.js";
import { waitFor } from "./process.js";
import { execOutput } from "./sandbox-harness.js";
import { makeTestPki } from "./test-pki.js";

export interface PolicyHostServers {
  /** Where the servers listen on the host. */
  bindAddress: string;
  ports: {
    allowed: number;
    other: number;
    rest: number;
    tls: number;
    audit: number;
    git: number;
  };
  /** Paths the git server was asked for. */
  gitRequests: string[];
  /** The test PKI's CA (PEM): the git server's certificate chains to it. */
  ca: Buffer;
  close(): void;
}

/**
 * The host services of the scenario, on `bindAddress`: an allowed one, another, an L7 `rest`
 * endpoint over HTTP and over HTTPS (a certificate the sandbox cannot verify), one in audit mode,
 * and a git repository over HTTPS ("dumb" HTTP) whose certificate names host.openshell.internal.
 * `workDir` holds the PKI and the repository.
 */
export async function startPolicyHostServers(
  bindAddress: string,
  workDir: string,
): Promise<PolicyHostServers> {
  const answer = (request: IncomingMessage, response: ServerResponse) => response.end(`hello ${request.url}`);
  const pki = await makeTestPki(workDir);
  const tlsOptions = { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) };
  const repo = makeBareRepo(workDir, "cloned through the proxy");
  const gitRequests: string[] = [];
  const servers = {
    allowed: createServer(answer),
    other: createServer(answer),
    rest: createServer(answer),
    tls: createHttpsServer(tlsOptions, answer),
    // The method shows whether a request the rules deny was forwarded.
    audit: createServer((request, response) => response.end(`${request.method} ${request.url}`)),
    git: createHttpsServer(tlsOptions, (request, response) => {
      const path = decodeURIComponent(new URL(request.url ?? "/", "https://x").pathname);
      gitRequests.push(path);
      const file = normalize(join(repo, path.replace(/^\/repo\.git\//, "")));
      if (!path.startsWith("/repo.git/") || !file.startsWith(`${repo}/`) || !existsSync(file)) {
        response.statusCode = 404;
        response.end();
        return;
      }
      response.end(readFileSync(file));
    }),
  } satisfies Record<keyof PolicyHostServers["ports"], Server>;
  const close = () => {
    for (const server of Object.values(servers)) server.close();
  };
  try {
    for (const server of Object.values(servers)) {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, bindAddress, resolve);
      });
    }
  } catch (error) {
    close();
    throw error;
  }
  const port = (server: Server) => (server.address() as AddressInfo).port;
  return {
    bindAddress,
    ports: {
      allowed: port(servers.allowed),
      other: port(servers.other),
      rest: port(servers.rest),
      tls: port(servers.tls),
      audit: port(servers.audit),
      git: port(servers.git),
    },
    gitRequests,
    ca: readFileSync(pki.ca),
    close,
  };
}

/** The scenario's policy: the host services at `hostAddress` (as the sandbox sees the host). */
export function proxiedPolicy(
  hostAddress: string,
  ports: PolicyHostServers["ports"],
): sandboxv1.SandboxPolicy {
  return create(sandboxv1.SandboxPolicySchema, {
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
        endpoints: [{ host: hostAddress, port: ports.allowed, ports: [ports.allowed] }],
        binaries: [{ path: "/usr/bin/curl" }],
      },
      host_rest: {
        name: "host-rest",
        endpoints: [ports.rest, ports.tls].map((port) => ({
          host: hostAddress,
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
            host: hostAddress,
            port: ports.audit,
            ports: [ports.audit],
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
          { host: "host.openshell.internal", port: ports.allowed, ports: [ports.allowed] },
          { host: "169.254.169.254", port: 80, ports: [80] },
        ],
        binaries: [{ path: "/usr/bin/curl" }],
      },
      // git only: git-remote-https, its child (a link to git-remote-http, the name the proxy
      // sees), matches through its ancestor /usr/bin/git.
      host_git: {
        name: "host-git",
        endpoints: [
          {
            host: "host.openshell.internal",
            port: ports.git,
            ports: [ports.git],
            allowedIps: [hostAddress],
          },
        ],
        binaries: [{ path: "/usr/bin/git" }],
      },
    },
  });
}

/**
 * What a sandbox created with `proxiedPolicy(hostAddress, …)` must see: the allowed host works,
 * others get the proxy's 403 with the policy JSON body, L7 enforce and audit over HTTP and HTTPS,
 * SSRF guards, git through its ancestor binary, a policy change applied live, direct connects
 * refused, and the proxy's and bypass monitor's events in the sandbox's log.
 */
export async function checkProxiedSandbox(
  gw: RunningGateway,
  sandbox: { id: string; name: string },
  hostAddress: string,
  servers: PolicyHostServers,
): Promise<void> {
  const { id, name } = sandbox;
  const { ports, gitRequests } = servers;
  const host = hostAddress;
  const hostPattern = host.replace(/\./g, "\\.");
  const run = async (script: string) =>
    execOutput(gw.grpc.execSandbox({ sandboxId: id, command: ["sh", "-c", script] }));
  const curl = "curl -sS -m 20 -w ' %{http_code}'";
  // The child environment names the proxy (§3.7).
  expect((await run("echo $HTTP_PROXY $NO_PROXY")).stdout.trim()).toBe(
    "http://10.200.0.1:3128 127.0.0.1,localhost,::1",
  );
  // Absolute-form (forward) and CONNECT to the allowed host service.
  expect((await run(`${curl} http://${host}:${ports.allowed}/fwd`)).stdout).toBe("hello /fwd 200");
  expect((await run(`${curl} -p http://${host}:${ports.allowed}/tunnel`)).stdout).toBe("hello /tunnel 200");
  // L7 (§3.8): the CA variables name the sandbox CA's files, readable by the sandbox user.
  expect(
    (await run("echo $SSL_CERT_FILE $NODE_EXTRA_CA_CERTS; test -r $CURL_CA_BUNDLE && echo readable")).stdout,
  ).toBe("/etc/openshell-tls/ca-bundle.pem /etc/openshell-tls/openshell-ca.pem\nreadable\n");
  // An enforce rule: GET allowed, POST 403 with upstream's body and X-OpenShell-Policy.
  expect((await run(`${curl} http://${host}:${ports.rest}/repos/a`)).stdout).toBe("hello /repos/a 200");
  const post = await run(`curl -sS -m 20 -i -X POST -p http://${host}:${ports.rest}/repos/a`);
  expect(post.stdout).toMatch(/HTTP\/1\.1 403 Forbidden\r\n[\s\S]*X-OpenShell-Policy: host_rest\r\n/);
  expect(post.stdout).toContain('{"error":"policy_denied","policy":"host_rest","rule":"POST /repos/a"');
  // HTTPS: curl trusts the proxy's leaf for the host address through CURL_CA_BUNDLE; the proxy's
  // own check of the server fails (its CA is not the sandbox's), so curl gets the 502 that says so.
  const tls = await run(`${curl} https://${host}:${ports.tls}/repos/a`);
  expect(tls.stdout, tls.stderr).toMatch(
    new RegExp(`^upstream TLS to ${hostPattern}:\\d+ failed: .* 502$`, "s"),
  );
  // An audit endpoint: a request the rules deny is logged and forwarded, in the absolute form
  // (decided by the forward path) and inside a CONNECT tunnel (the L7 stage's request loop).
  expect((await run(`${curl} -X DELETE http://${host}:${ports.audit}/repos/a`)).stdout).toBe(
    "DELETE /repos/a 200",
  );
  expect((await run(`${curl} -X POST -p http://${host}:${ports.audit}/other`)).stdout).toBe(
    "POST /other 200",
  );
  expect((await run(`${curl} -p http://${host}:${ports.audit}/repos/b`)).stdout).toBe("GET /repos/b 200");
  // SSRF: the metadata address is refused although the policy names it (always blocked), and a
  // name that resolves to a private address (host.openshell.internal is the host's address in the
  // sandbox's /etc/hosts) is refused while its endpoint has no allowed_ips.
  expect((await run(`${curl} http://169.254.169.254/latest/meta-data/`)).stdout).toBe(
    '{"error":"ssrf_denied","detail":"CONNECT 169.254.169.254:80 blocked: internal address"} 403',
  );
  expect((await run(`${curl} http://host.openshell.internal:${ports.allowed}/alias`)).stdout).toBe(
    `{"error":"ssrf_denied","detail":"CONNECT host.openshell.internal:${ports.allowed} blocked: internal address"} 403`,
  );
  // git over HTTPS through the proxy: the test CA goes into /sandbox for GIT_SSL_CAINFO.
  const ca = servers.ca.toString("base64");
  expect((await run(`echo ${ca} | base64 -d > /sandbox/ca.pem && echo ok`)).stdout).toBe("ok\n");
  const gitUrl = `https://host.openshell.internal:${ports.git}/repo.git`;
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
  expect((await run(`${curl} http://${host}:${ports.other}/`)).stdout).toBe(
    `{"error":"policy_denied","detail":"CONNECT ${host}:${ports.other} not permitted by policy"} 403`,
  );
  // Another binary than curl: denied.
  const python = await run(
    `python3 -c 'import urllib.request as u; u.urlopen("http://${host}:${ports.allowed}/py")' 2>&1 | grep -o 'HTTP Error 403: Forbidden'`,
  );
  expect(python.stdout.trim(), python.stderr).toBe("HTTP Error 403: Forbidden");
  // A policy change (python3 added to the rule) applies to the next connection once LOADED.
  const current = (await gw.grpc.getSandboxPolicyStatus({ name, version: 0 })).revision;
  const changed = create(sandboxv1.SandboxPolicySchema, current?.policy);
  changed.networkPolicies.host_api?.binaries.push(
    create(sandboxv1.NetworkBinarySchema, { path: "/usr/bin/python3*" }),
  );
  // ... and allowed_ips for host.openshell.internal.
  const alias = changed.networkPolicies.host_alias?.endpoints[0];
  if (alias) alias.allowedIps = [host];
  const { version } = await gw.grpc.updateConfig({ name, policy: changed });
  await waitFor(
    async () =>
      (await gw.grpc.getSandboxPolicyStatus({ name, version })).revision?.status === PolicyStatus.LOADED,
    30_000,
    `policy version ${version} was not LOADED`,
  );
  const allowedPython = await run(
    `python3 -c 'import urllib.request as u; print(u.urlopen("http://${host}:${ports.allowed}/py").read().decode())'`,
  );
  expect(allowedPython.stdout.trim(), allowedPython.stderr).toBe("hello /py");
  expect((await run(`${curl} http://host.openshell.internal:${ports.allowed}/alias`)).stdout).toBe(
    "hello /alias 200",
  );
  // A connect that ignores the proxy fails at once (connection refused), and is logged.
  const direct = await run(`curl -sS -m 20 --noproxy '*' http://${host}:${ports.allowed}/; echo " exit=$?"`);
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
  expect(text).toMatch(
    new RegExp(`NET:REFUSE \\[MEDIUM\\] BLOCKED python3[.\\d]*\\(\\d+\\) -> ${hostPattern}`),
  );
  expect(text).toMatch(
    new RegExp(
      `HTTP:POST \\[MEDIUM\\] BLOCKED curl\\(\\d+\\) -> POST http://${hostPattern}:\\d+/repos/a \\[policy:host-rest`,
    ),
  );
  for (const [method, path] of [
    ["DELETE", "/repos/a"],
    ["POST", "/other"],
  ])
    expect(text).toMatch(
      new RegExp(
        `HTTP:${method} \\[LOW\\] ALLOWED curl\\(\\d+\\) -> ${method} http://${hostPattern}:${ports.audit}${path} \\[policy:host-audit reason:${method} ${path} not permitted by policy mode:audit audit:forwarded\\]`,
      ),
    );
  expect(text).toContain(
    "[policy:host-alias reason:ssrf: 169.254.169.254 resolves to internal address 169.254.169.254, connection rejected]",
  );
  expect(text).toMatch(
    /NET:OPEN \[INFO\] ALLOWED git-remote-http\(\d+\) -> host\.openshell\.internal:\d+ \[policy:host-git/,
  );
}

/**
 * A shell line that shows how a sandbox child is confined (issue 13): its user, capabilities,
 * no_new_privs and seccomp mode, then what Landlock and seccomp let it do. /dev/shm and /var/tmp
 * are world-writable and /var/lib/dpkg/status world-readable, so EACCES there is the kernel's
 * Landlock (with a policy that lists neither /var nor /dev/shm). It travels base64-encoded: exec
 * arguments cannot contain newlines.
 */
export const CONFINEMENT_PROBE = [
  "id -un",
  "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '",
  `/usr/bin/python3 -c "import base64; exec(base64.b64decode('${Buffer.from(
    [
      "import ctypes, errno",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "def io(name, f):",
      "    try: f(); print(name, 'ok')",
      "    except OSError as e: print(name, errno.errorcode[e.errno])",
      "def call(name, r): print(name, 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()])",
      "io('write-dev-shm', lambda: open('/dev/shm/outside', 'w').write('x'))",
      "io('write-var-tmp', lambda: open('/var/tmp/outside', 'w').write('x'))",
      "io('read-unlisted', lambda: open('/var/lib/dpkg/status').read(1))",
      "io('write-workdir', lambda: open('/sandbox/confined.txt', 'w').write('x'))",
      "call('ptrace', libc.ptrace(0, 0, 0, 0))",
      "call('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))",
      "call('netlink-socket', libc.socket(16, 3, 0))",
      "call('packet-socket', libc.socket(17, 3, 0))",
      // AF_INET SOCK_RAW ICMP: EPERM without CAP_NET_RAW (seccomp lets AF_INET through).
      "call('raw-socket', libc.socket(2, 3, 1))",
    ].join("\n"),
  ).toString("base64")}'))"`,
  "unshare -U true 2>&1 | tail -1",
].join("; ");

/** What CONFINEMENT_PROBE prints in a confined sandbox child, line by line. */
export const CONFINED = [
  "sandbox",
  "CapEff: 0000000000000000",
  "CapBnd: 0000000000000000",
  "NoNewPrivs: 1",
  "Seccomp: 2",
  "write-dev-shm EACCES",
  "write-var-tmp EACCES",
  "read-unlisted EACCES",
  "write-workdir ok",
  "ptrace EPERM",
  "mount EPERM",
  "netlink-socket EPERM",
  "packet-socket EPERM",
  "raw-socket EPERM",
  "unshare: unshare failed: Operation not permitted",
] as const;

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
