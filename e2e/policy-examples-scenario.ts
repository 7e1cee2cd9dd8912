import { join } from "node:path";
import { type CliSandboxUser, REPO } from "@openshell/testing/cli-harness";
import { waitFor } from "@openshell/testing/process";
import { expect } from "vitest";

/**
 * The shipped example policies (`examples/policies/`) in a sandbox, through the `openshell` CLI as
 * the README shows them, the same for every compute driver (the supervisor is the same): created
 * with deny-all, then switched to coding-agent with `policy set --wait`. Nothing but the npm
 * registry is reachable from this machine, and its DNS has no github.com and gives
 * registry.npmjs.org a documentation address the SSRF guard refuses, so the checks are the proxy's
 * decisions (and what it logs), not the upstream servers' answers.
 */
export const DENY_ALL = join(REPO, "examples", "policies", "deny-all.yaml");
const CODING_AGENT = join(REPO, "examples", "policies", "coding-agent.yaml");

/** curl through the proxy: the CONNECT status the proxy answered, and curl's exit code. */
const curlConnect = (url: string) =>
  `curl -sS -m 20 -o /dev/null -w '%{http_connect}' ${url} 2>/dev/null; echo " exit=$?"`;
/** python3 (urllib, through HTTPS_PROXY): what its CONNECT got. */
const pythonConnect = (url: string) =>
  `python3 -c 'import urllib.request as u; u.urlopen("${url}")' 2>&1 | grep -m1 -o 'Tunnel connection failed: [0-9]* [A-Za-z ]*'`;
/**
 * node speaking CONNECT to the proxy itself (HTTP_PROXY's address), so the 403 body is seen: which
 * of the proxy's checks refused (policy_denied or ssrf_denied). The process is node either way.
 * (The proxy hashes a binary for trust-on-first-use in the background: node's first connection is
 * answered at once, though its 127 MB take ~25 s to hash under TCG.)
 */
const nodeConnect = (host: string) =>
  `node -e 'const crlf = String.fromCharCode(13, 10); const s = require("net").connect(3128, "10.200.0.1", () => s.write(["CONNECT ${host}:443 HTTP/1.1", "Host: ${host}:443", "", ""].join(crlf))); s.on("data", (d) => process.stdout.write(d)); s.on("error", (e) => console.log("error:", e.message)); s.on("close", () => console.log("closed"))'`;

/** Runs `script` in the sandbox through `sandbox exec`; it must exit 0. */
function shellIn(user: CliSandboxUser, sandbox: string) {
  return async (script: string) => {
    const result = await user.run(["sandbox", "exec", sandbox, "--", "sh", "-c", script], {
      timeoutMs: 120_000,
    });
    expect(result.code, `${script}\n${result.stderr}`).toBe(0);
    return result.stdout;
  };
}

const sandboxLogs = async (user: CliSandboxUser, sandbox: string) =>
  (await user.run(["logs", sandbox, "-n", "1000", "--source", "sandbox"])).stdout;

/** A sandbox created with deny-all.yaml: the sandbox user, Landlock, and every connection refused. */
export async function checkDenyAll(user: CliSandboxUser, sandbox: string): Promise<void> {
  const sh = shellIn(user, sandbox);
  const logs = () => sandboxLogs(user, sandbox);
  // Files: the system is read-only, /sandbox and /tmp writable. /var/tmp and /dev/shm are
  // world-writable, so EACCES there is Landlock's.
  const writes = await sh(
    `id -un; for p in /var/tmp/w /dev/shm/w /usr/w /sandbox/w /tmp/w; do python3 -c 'import sys; open(sys.argv[1], "w")' $p 2>&1 | grep -o 'Errno 13' || echo "$p ok"; done`,
  );
  expect(writes).toBe("sandbox\nErrno 13\nErrno 13\nErrno 13\n/sandbox/w ok\n/tmp/w ok\n");

  // Plain http:// (forwarded by the proxy): the 403 body. HTTPS (CONNECT): the 403 status.
  expect(await sh("curl -sS -m 20 -w ' %{http_code}' http://example.com/")).toBe(
    '{"error":"policy_denied","detail":"CONNECT example.com:80 not permitted by policy"} 403',
  );
  expect(await sh(curlConnect("https://github.com/"))).toBe("403 exit=56\n");
  expect(await sh(pythonConnect("https://pypi.org/simple/"))).toBe(
    "Tunnel connection failed: 403 Forbidden\n",
  );
  expect(await sh(nodeConnect("registry.npmjs.org"))).toContain(
    '{"error":"policy_denied","detail":"CONNECT registry.npmjs.org:443 not permitted by policy"}',
  );
  // A connection that ignores the proxy is refused at once and logged; loopback still works.
  expect(await sh("curl -sS -m 20 --noproxy '*' http://192.0.2.10/ 2>/dev/null; echo exit=$?")).toBe(
    "exit=7\n",
  );
  expect(
    await sh(
      `python3 -c 'import socket; s = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(s.getsockname()); print("loopback", s.accept()[1][0])'`,
    ),
  ).toBe("loopback 127.0.0.1\n");

  await waitFor(
    async () => (await logs()).includes("bypass attempt tcp 10.200.0.2"),
    20_000,
    "no bypass event in the sandbox's log",
  );
  const text = await logs();
  expect(text).toMatch(/NET:REFUSE \[MEDIUM\] BLOCKED curl\(\d+\) -> example\.com:80 \[policy:- reason:/);
  expect(text).toMatch(/NET:REFUSE \[MEDIUM\] BLOCKED python3[.\d]*\(\d+\) -> pypi\.org:443 \[policy:- /);
  expect(text).toMatch(/NET:REFUSE \[MEDIUM\] BLOCKED node\(\d+\) -> registry\.npmjs\.org:443 \[policy:- /);
}

/** `policy set --wait coding-agent.yaml` on that sandbox: each host only from its binaries, others refused. */
export async function checkCodingAgent(user: CliSandboxUser, sandbox: string): Promise<void> {
  const sh = shellIn(user, sandbox);
  const logs = () => sandboxLogs(user, sandbox);
  // The supervisor's start-up sync first (a set before it could be superseded by it).
  await waitFor(
    async () => {
      const status = await user.run(["policy", "get", sandbox, "-o", "json"]);
      return status.code === 0 && JSON.parse(status.stdout).active_version > 0;
    },
    60_000,
    `the start-up policy of '${sandbox}' was not loaded`,
  );
  const set = await user.run(["policy", "set", sandbox, "--policy", CODING_AGENT, "--wait"]);
  expect(set.code, set.stderr).toBe(0);
  expect(set.stderr).toMatch(/Policy version (\d+) loaded \(active version: \1\)/);

  // A host in no rule: refused, whatever the binary.
  expect(await sh("curl -sS -m 20 -w ' %{http_code}' http://example.com/")).toBe(
    '{"error":"policy_denied","detail":"CONNECT example.com:80 not permitted by policy"} 403',
  );
  expect(await sh(curlConnect("https://example.com/"))).toBe("403 exit=56\n");
  // github.com from python3: refused (the rule names git and curl).
  expect(await sh(pythonConnect("https://github.com/"))).toBe("Tunnel connection failed: 403 Forbidden\n");
  // From curl, and from git (git-remote-http, allowed through its ancestor /usr/bin/git), the
  // policy allows it: past the decision the proxy resolves the name, and here that fails (502,
  // "cannot resolve"); with the internet it would be 200.
  expect(await sh(curlConnect("https://github.com/"))).toMatch(/^(200 exit=0|502 exit=56)\n$/);
  expect(await sh("git ls-remote https://github.com/openshell/none.git 2>&1; true")).toMatch(
    /CONNECT tunnel failed, response 502|could not read Username for 'https:\/\/github\.com'/,
  );
  // registry.npmjs.org from node: allowed by npm-registry, so the SSRF check decides: here the
  // name resolves to 203.0.113.80 (TEST-NET-3, internal), refused with ssrf_denied.
  expect(await sh(nodeConnect("registry.npmjs.org"))).toMatch(
    /HTTP\/1\.1 (200 Connection Established|403 Forbidden[\s\S]*\{"error":"ssrf_denied","detail":"CONNECT registry\.npmjs\.org:443 blocked: internal address"\})/,
  );
  // ... and from curl it is refused by the policy.
  expect(await sh(curlConnect("https://registry.npmjs.org/"))).toBe("403 exit=56\n");
  // Landlock is fixed at start: still the same confinement.
  expect(await sh("id -un; touch /var/tmp/w 2>&1 | grep -o 'Permission denied'")).toBe(
    "sandbox\nPermission denied\n",
  );

  // The supervisor ships its log lines in batches: wait for the last refusal above to arrive.
  const lastRefusal =
    /NET:REFUSE \[MEDIUM\] BLOCKED curl\(\d+\) -> registry\.npmjs\.org:443 \[policy:npm-registry reason:/;
  await waitFor(
    async () => lastRefusal.test(await logs()),
    20_000,
    "no refusal of curl to registry.npmjs.org in the sandbox's log",
  );
  const text = await logs();
  expect(text).toMatch(/NET:REFUSE \[MEDIUM\] BLOCKED curl\(\d+\) -> example\.com:443 \[policy:- reason:/);
  expect(text).toMatch(
    /NET:REFUSE \[MEDIUM\] BLOCKED python3[.\d]*\(\d+\) -> github\.com:443 \[policy:github-git reason:/,
  );
  expect(text).toMatch(
    /NET:REFUSE \[MEDIUM\] BLOCKED curl\(\d+\) -> registry\.npmjs\.org:443 \[policy:npm-registry reason:/,
  );
  // The allowed connections name their rule in the log line and its fields: NET:OPEN with the
  // internet, NET:FAIL "DNS resolution failed ... [policy:github-git]" here.
  const lines = (await user.run(["logs", sandbox, "-n", "1000", "--source", "sandbox", "-o", "json"])).stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { message: string; fields?: Record<string, string> });
  for (const binary of ["curl", "git-remote-http"]) {
    const decided = lines.filter((line) =>
      new RegExp(
        `^NET:(OPEN \\[INFO\\] ALLOWED|FAIL \\[LOW\\]) ${binary}\\(\\d+\\) -> github\\.com:443`,
      ).test(line.message),
    );
    expect(decided.length, `${binary} -> github.com in\n${text}`).toBeGreaterThan(0);
    for (const line of decided) {
      expect(line.message).toContain("[policy:github-git");
      expect(line.fields).toMatchObject({ policy: "github-git", dst_host: "github.com" });
    }
  }
  expect(text).toMatch(
    /NET:OPEN \[INFO\] ALLOWED node\(\d+\) -> registry\.npmjs\.org:443 \[policy:npm-registry|NET:REFUSE \[MEDIUM\] BLOCKED node\(\d+\) -> registry\.npmjs\.org:443 \[policy:npm-registry reason:ssrf: registry\.npmjs\.org resolves to internal address/,
  );
}
