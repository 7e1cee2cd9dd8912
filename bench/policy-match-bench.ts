// The egress proxy's policy decisions (issue 13): @openshell/policy's compiled network policy on a
// policy with 100 rules, each figure next to a baseline measured in the same run, rounds interleaved.
//  1. evaluateConnect (host + port + binary → allow/deny, upstream's reasons) on a mix of requests:
//     exact-host allows, glob-host allows, binary denials, unknown-host denials (whose reason lists
//     all 100 rules, as upstream's does). Baseline: a Map lookup of the exact host plus a Set check
//     of the port, over the same requests: the least any allowlist lookup can cost.
//  2. L7Evaluator.evaluateRequest (canonicalise the request-target, allow rules, query matchers, deny
//     rules) on a rest endpoint with 12 allow rules and 3 deny rules. Baseline: a Map lookup of
//     `METHOD target` as sent (an exact route table, no canonicalisation, no globs).
//  3. compileNetworkPolicy of the 100-rule policy, next to parsePolicyYaml of the same policy's YAML
//     (what a reload already pays before compiling).
// Usage: bash bench/run.sh policy-match-bench.ts [--rounds 7] [--ms 300] [--compiles 200]
import { parseArgs } from "node:util";
import {
  type ConnectRequest,
  compileNetworkPolicy,
  type L7Request,
  parsePolicyYaml,
} from "@openshell/policy";
import { median } from "./stats.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "7" },
    ms: { type: "string", default: "300" },
    compiles: { type: "string", default: "200" },
  },
});
const ROUNDS = Number(values.rounds);
const MS = Number(values.ms);
const COMPILES = Number(values.compiles);
for (const [flag, value] of [
  ["--rounds", ROUNDS],
  ["--ms", MS],
  ["--compiles", COMPILES],
] as const) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag}: '${value}' is not a positive integer`);
}

const RULES = 100;
const pad = (n: number) => String(n).padStart(3, "0");

/** 100 rules: 80 exact hosts (20 of them rest with presets, deny rules and explicit rules), 15 globs, 5 hostless. */
function policyYaml(): string {
  const lines = ["version: 1", "network_policies:"];
  for (let i = 0; i < RULES; i += 1) {
    const id = pad(i);
    lines.push(`  svc_${id}:`, `    name: service-${id}`, "    endpoints:");
    if (i < 60) {
      lines.push(`      - { host: api-${id}.example-${id}.com, ports: [443, 8443] }`);
    } else if (i < 80) {
      lines.push(
        `      - host: rest-${id}.example.com`,
        "        port: 443",
        "        protocol: rest",
        "        enforcement: enforce",
        "        rules:",
        `          - allow: { method: GET, path: "/repos/**" }`,
        `          - allow: { method: GET, path: "/users/*/keys" }`,
        `          - allow: { method: POST, path: "/repos/*/*/issues" }`,
        `          - allow: { method: GET, path: "/search", query: { q: "repo:*", page: { any: ["1", "2", "3"] } } }`,
        `          - allow: { method: GET, path: "/**/info/refs*" }`,
        `          - allow: { method: POST, path: "/**/git-upload-pack" }`,
        `          - allow: { method: PUT, path: "/repos/*/*/contents/**" }`,
        `          - allow: { method: PATCH, path: "/repos/*/*/pulls/*" }`,
        `          - allow: { method: DELETE, path: "/repos/*/*/labels/*" }`,
        `          - allow: { method: HEAD, path: "**" }`,
        `          - allow: { method: OPTIONS, path: "**" }`,
        `          - allow: { method: GET, path: "/orgs/*/members" }`,
        "        deny_rules:",
        `          - { method: GET, path: "/repos/*/secrets/**" }`,
        `          - { method: "*", path: "/admin/**" }`,
        `          - { method: DELETE, path: "/repos/**", query: { force: "true" } }`,
      );
    } else if (i < 95) {
      lines.push(`      - { host: "*.cdn-${id}.example.com", port: 443 }`);
    } else {
      lines.push(`      - { ports: [${9000 + i}], allowed_ips: ["10.${i}.0.0/24"] }`);
    }
    lines.push(
      "    binaries:",
      `      - { path: /usr/bin/tool-${id} }`,
      `      - { path: "/opt/agent-${id}/bin/*" }`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const yaml = policyYaml();
const policy = parsePolicyYaml(yaml);
const compiled = compileNetworkPolicy(policy);

const binary = (path: string, ancestors: string[] = []) => ({ path, ancestors, cmdlinePaths: [] });
const connects: ConnectRequest[] = [];
for (let i = 0; i < 256; i += 1) {
  const rule = (i * 37) % RULES;
  const id = pad(rule);
  const host =
    rule < 60
      ? `api-${id}.example-${id}.com`
      : rule < 80
        ? `rest-${id}.example.com`
        : rule < 95
          ? `img${i}.cdn-${id}.example.com`
          : `printer-${i}.lan`;
  const port = rule < 95 ? 443 : 9000 + rule;
  switch (i % 8) {
    case 6: // binary denial
      connects.push({ host, port, binary: binary("/usr/bin/python3") });
      break;
    case 7: // unknown host
      connects.push({ host: `unknown-${i}.example.org`, port: 443, binary: binary("/usr/bin/curl") });
      break;
    case 5: // allowed through an ancestor glob
      connects.push({ host, port, binary: binary("/usr/bin/node", [`/opt/agent-${id}/bin/agent`]) });
      break;
    default:
      connects.push({ host, port, binary: binary(`/usr/bin/tool-${id}`) });
  }
}
const allowedShare =
  connects.filter((request) => compiled.evaluateConnect(request).allowed).length / connects.length;

// Baseline 1: exact host → port set.
const hostPorts = new Map<string, Set<number>>();
for (const key of Object.keys(policy.networkPolicies)) {
  for (const endpoint of policy.networkPolicies[key]?.endpoints ?? []) {
    hostPorts.set(endpoint.host, new Set(endpoint.ports));
  }
}

// L7: one of the rest endpoints.
const restDecision = compiled.evaluateConnect({
  host: "rest-070.example.com",
  port: 443,
  binary: binary("/usr/bin/tool-070"),
});
if (!restDecision.allowed || restDecision.endpoint.l7 === undefined)
  throw new Error("rest endpoint did not compile");
const l7 = restDecision.endpoint.l7;
const requests: L7Request[] = [
  { method: "GET", target: "/repos/NVIDIA/OpenShell/pulls?state=open&per_page=100" },
  { method: "GET", target: "/users/octocat/keys" },
  { method: "POST", target: "/repos/NVIDIA/OpenShell/issues" },
  { method: "GET", target: "/search?q=repo:NVIDIA/OpenShell&page=2" },
  { method: "GET", target: "/NVIDIA/OpenShell.git/info/refs?service=git-upload-pack" },
  { method: "POST", target: "/NVIDIA/OpenShell.git/git-upload-pack" },
  { method: "GET", target: "/repos/NVIDIA/secrets/TOKEN" },
  { method: "DELETE", target: "/repos/NVIDIA/OpenShell/labels/bug?force=true" },
  { method: "GET", target: "/repos/NVIDIA/OpenShell/../../admin/users" },
  { method: "put", target: "/repos/NVIDIA/OpenShell/contents/src//main.rs" },
  { method: "GET", target: "/orgs/NVIDIA/members" },
  { method: "POST", target: "/markdown" },
];
const allowedRequests = requests.filter((request) => l7.evaluateRequest(request).allowed).length;
const routes = new Map<string, boolean>(
  requests.map((request, i) => [`${request.method} ${request.target}`, i % 2 === 0]),
);

let sink = 0;
/** Calls `op(i)` in batches for MS milliseconds; returns operations per second. */
function rate(op: (i: number) => void): number {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(MS) * 1_000_000n;
  let count = 0;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 1024; i += 1) op(count + i);
    count += 1024;
    now = process.hrtime.bigint();
  }
  return count / (Number(now - start) / 1e9);
}

const connectRates: number[] = [];
const connectBaseRates: number[] = [];
const requestRates: number[] = [];
const requestBaseRates: number[] = [];
const allowOnlyConnects = connects.filter((_, i) => i % 8 < 6);
const allowOnlyRates: number[] = [];
for (let round = 0; round < ROUNDS; round += 1) {
  connectBaseRates.push(
    rate((i) => {
      const request = connects[i & 255] as ConnectRequest;
      if (hostPorts.get(request.host)?.has(request.port)) sink += 1;
    }),
  );
  connectRates.push(
    rate((i) => {
      if (compiled.evaluateConnect(connects[i & 255] as ConnectRequest).allowed) sink += 1;
    }),
  );
  allowOnlyRates.push(
    rate((i) => {
      const request = allowOnlyConnects[i % allowOnlyConnects.length] as ConnectRequest;
      if (compiled.evaluateConnect(request).allowed) sink += 1;
    }),
  );
  requestBaseRates.push(
    rate((i) => {
      const request = requests[i % requests.length] as L7Request;
      if (routes.get(`${request.method} ${request.target}`)) sink += 1;
    }),
  );
  requestRates.push(
    rate((i) => {
      if (l7.evaluateRequest(requests[i % requests.length] as L7Request).allowed) sink += 1;
    }),
  );
}

const compileMs: number[] = [];
const parseMs: number[] = [];
for (let i = 0; i < COMPILES; i += 1) {
  let t = performance.now();
  const parsed = parsePolicyYaml(yaml);
  parseMs.push(performance.now() - t);
  t = performance.now();
  sink += compileNetworkPolicy(parsed).ruleKeys.length;
  compileMs.push(performance.now() - t);
}

const perSecond = (xs: number[]) => `${(median(xs) / 1e6).toFixed(2)} M/s`;
const micros = (xs: number[]) => `${((1 / median(xs)) * 1e6).toFixed(3)} µs`;
console.log(
  `policy: ${RULES} rules (${compiled.ruleKeys.length} compiled), Node ${process.version}, ${ROUNDS} rounds of ${MS} ms`,
);
console.log(
  `evaluateConnect, ${connects.length} requests (${Math.round(allowedShare * 100)} % allowed): ${perSecond(connectRates)} (${micros(connectRates)}/decision)`,
);
console.log(
  `  allowed requests only:                ${perSecond(allowOnlyRates)} (${micros(allowOnlyRates)}/decision)`,
);
console.log(
  `  baseline Map host → Set port lookup:  ${perSecond(connectBaseRates)} (${micros(connectBaseRates)}); ratio ${(median(connectRates) / median(connectBaseRates)).toFixed(3)}`,
);
console.log(
  `evaluateRequest, ${requests.length} requests (${allowedRequests} allowed), 12 allow + 3 deny rules: ${perSecond(requestRates)} (${micros(requestRates)}/request)`,
);
console.log(
  `  baseline Map "METHOD target" lookup:  ${perSecond(requestBaseRates)} (${micros(requestBaseRates)}); ratio ${(median(requestRates) / median(requestBaseRates)).toFixed(3)}`,
);
console.log(
  `compileNetworkPolicy: p50 ${median(compileMs).toFixed(3)} ms (n=${COMPILES}); parsePolicyYaml of the same policy p50 ${median(parseMs).toFixed(3)} ms`,
);
console.log(
  JSON.stringify({
    rules: RULES,
    connectPerSec: Math.round(median(connectRates)),
    connectAllowedPerSec: Math.round(median(allowOnlyRates)),
    connectBaselinePerSec: Math.round(median(connectBaseRates)),
    requestPerSec: Math.round(median(requestRates)),
    requestBaselinePerSec: Math.round(median(requestBaseRates)),
    compileMsP50: Number(median(compileMs).toFixed(3)),
    parseYamlMsP50: Number(median(parseMs).toFixed(3)),
    sink: sink > 0,
  }),
);
