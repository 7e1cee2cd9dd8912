// CLI cold start: wall time of `openshell --version`, `--help` and `sandbox list --help` (a fresh
// node process each, as a shell runs it) against `node -e 0` measured in the same run, interleaved
// so that machine noise hits every command alike; plus each process's peak RSS. Target: `openshell
// --version` p50 under 150 ms.
// Usage: bash bench/run.sh cli-bench.ts [--runs 30] [--cli PATH]
// --cli times another bundle, e.g. an npm install's <prefix>/lib/node_modules/openshell/dist/openshell.js.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { findRepoRoot } from "@openshell/testing/process";
import { median, quantile } from "./stats.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "30" }, cli: { type: "string" } },
});
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1)
  throw new Error(`--runs: '${values.runs}' is not a positive integer`);
const TARGET_MS = 150;
/** Peak-RSS runs per command: a separate, smaller pass, since the probe adds to the start time. */
const RSS_RUNS = 5;

const REPO = findRepoRoot(import.meta.dirname);
const CLI = values.cli ?? join(REPO, "apps", "cli", "dist", "openshell.js");
if (!existsSync(CLI)) {
  console.error(`cli-bench: ${CLI} does not exist: run bash scripts/setup.sh first`);
  process.exit(1);
}

interface Case {
  name: string;
  args: string[];
}
const BASELINE: Case = { name: "node -e 0", args: ["-e", "0"] };
const CASES: Case[] = [
  BASELINE,
  { name: "openshell --version", args: [CLI, "--version"] },
  { name: "openshell --help", args: [CLI, "--help"] },
  { name: "openshell sandbox list --help", args: [CLI, "sandbox", "list", "--help"] },
];

function run(args: string[]): { ms: number; stdout: string } {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const ms = performance.now() - started;
  if (result.status !== 0)
    throw new Error(`node ${args.join(" ")} exited ${result.status ?? result.signal}: ${result.stderr}`);
  return { ms, stdout: result.stdout };
}

/** Peak RSS (MiB) of one run, reported by the process itself as it exits. */
function peakRssMiB(args: string[]): number {
  const probe = `data:text/javascript,process.on("exit",()=>process.stderr.write("maxrss="+process.resourceUsage().maxRSS+"\\n"))`;
  const result = spawnSync(process.execPath, ["--import", probe, ...args], { encoding: "utf8" });
  const kib = /maxrss=(\d+)/.exec(result.stderr)?.[1];
  if (result.status !== 0 || !kib)
    throw new Error(`rss probe of node ${args.join(" ")} failed: ${result.stderr}`);
  return Number(kib) / 1024;
}

// One warm-up each (page cache, the first ever start), checked for the output we expect.
for (const c of CASES) {
  const { stdout } = run(c.args);
  if (c !== BASELINE && stdout.trim() === "") throw new Error(`${c.name} printed nothing`);
}
const version = run(CASES[1]!.args).stdout.trim();

const times = new Map<Case, number[]>(CASES.map((c) => [c, []]));
for (let i = 0; i < RUNS; i++) {
  // Interleaved, starting one further each round, so no command always follows the same one.
  for (let j = 0; j < CASES.length; j++) {
    const c = CASES[(i + j) % CASES.length]!;
    times.get(c)!.push(run(c.args).ms);
  }
}
const rss = new Map<Case, number>();
for (const c of CASES) rss.set(c, median(Array.from({ length: RSS_RUNS }, () => peakRssMiB(c.args))));

const date = new Date().toISOString();
const base = times.get(BASELINE)!;
const results = CASES.map((c) => {
  const xs = times.get(c)!;
  return {
    name: c.name,
    p50Ms: median(xs),
    p90Ms: quantile(xs, 0.9),
    minMs: Math.min(...xs),
    /** p50 over the p50 of `node -e 0`, and the difference: what the CLI itself costs. */
    ratioToNode: median(xs) / median(base),
    overNodeMs: median(xs) - median(base),
    peakRssMiB: rss.get(c)!,
    overNodeRssMiB: rss.get(c)! - rss.get(BASELINE)!,
  };
});

console.log(
  `# cli-bench  node ${process.version}  openshell ${version}  ${RUNS} runs each, interleaved  (${date})`,
);
const header = ["command", "p50 ms", "p90 ms", "min ms", "vs node -e 0 (p50)", "peak RSS MiB"];
const rows = results.map((r) => [
  r.name,
  r.p50Ms.toFixed(1),
  r.p90Ms.toFixed(1),
  r.minMs.toFixed(1),
  r.name === BASELINE.name
    ? "baseline"
    : `${r.ratioToNode.toFixed(2)}x, ${r.overNodeMs >= 0 ? "+" : ""}${r.overNodeMs.toFixed(1)} ms`,
  r.name === BASELINE.name
    ? r.peakRssMiB.toFixed(1)
    : `${r.peakRssMiB.toFixed(1)} (+${r.overNodeRssMiB.toFixed(1)})`,
]);
const widths = header.map((h, k) => Math.max(h.length, ...rows.map((row) => row[k]!.length)));
for (const row of [header, ...rows])
  console.log(
    row.map((cell, k) => (k === 0 ? cell.padEnd(widths[k]!) : cell.padStart(widths[k]!))).join("  "),
  );
const versionP50 = results[1]!.p50Ms;
console.log(
  `target: openshell --version p50 < ${TARGET_MS} ms: ${versionP50 < TARGET_MS ? "met" : "MISSED"} (${versionP50.toFixed(1)} ms; node alone ${median(base).toFixed(1)} ms)`,
);
console.log(
  JSON.stringify({
    bench: "cli-bench",
    node: process.version,
    openshell: version,
    runs: RUNS,
    date,
    targetMs: TARGET_MS,
    targetMet: versionP50 < TARGET_MS,
    results: results.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([key, value]) => [
          key,
          typeof value === "number" ? Number(value.toFixed(2)) : value,
        ]),
      ),
    ),
  }),
);
