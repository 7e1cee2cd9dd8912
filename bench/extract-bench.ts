// `sandbox download`'s host side: our safe tar extractor (apps/cli/src/files/safe-extract.ts)
// against the host's GNU tar it replaced (`tar -x --no-same-owner`), on the same archives, runs
// interleaved. Two archives made by GNU tar: one big file (throughput) and many small files in
// nested directories (per-entry cost).
// Usage: bash bench/run.sh extract-bench.ts [--runs 5] [--big-mib 256] [--files 5000]
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { extractTarSafely } from "openshell/safe-extract";
import { median, quantile } from "./stats.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "big-mib": { type: "string", default: "256" },
    files: { type: "string", default: "5000" },
  },
});
const RUNS = Number(values.runs);
const BIG_MIB = Number(values["big-mib"]);
const FILES = Number(values.files);
for (const [flag, value] of [
  ["--runs", RUNS],
  ["--big-mib", BIG_MIB],
  ["--files", FILES],
] as const) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag}: '${value}' is not a positive integer`);
}

const root = mkdtempSync(join(tmpdir(), "extract-bench-"));
process.on("exit", () => rmSync(root, { recursive: true, force: true }));

function makeArchive(name: string, fill: (dir: string) => void): string {
  const dir = join(root, `${name}-src`);
  mkdirSync(dir);
  fill(dir);
  const archive = join(root, `${name}.tar`);
  execFileSync("tar", ["-cf", archive, "-C", dir, "."]);
  rmSync(dir, { recursive: true, force: true });
  return archive;
}

const big = makeArchive("big", (dir) => {
  execFileSync("sh", ["-c", `head -c ${BIG_MIB * 1024 * 1024} /dev/urandom > '${join(dir, "big.bin")}'`]);
});
const small = makeArchive("small", (dir) => {
  for (let index = 0; index < FILES; index++) {
    const sub = join(dir, `d${index % 50}`, `e${index % 7}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `file-${index}.txt`), `content ${index}\n`.repeat(20));
  }
});

function hostTar(archive: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", ["-x", "-f", "-", "--no-same-owner", "-C", dest], {
      stdio: ["pipe", "ignore", "inherit"],
    });
    createReadStream(archive).pipe(child.stdin);
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}`))));
  });
}

async function ours(archive: string, dest: string): Promise<void> {
  const { refused } = await extractTarSafely(createReadStream(archive), { dest });
  if (refused.length > 0) throw new Error(`refused: ${JSON.stringify(refused)}`);
}

const methods = { "host GNU tar (before)": hostTar, "extractTarSafely (now)": ours };
for (const [label, archive] of [
  [`one ${BIG_MIB} MiB file`, big],
  [`${FILES} small files in 350 directories`, small],
] as const) {
  const samples: Record<string, number[]> = Object.fromEntries(
    Object.keys(methods).map((name) => [name, []]),
  );
  for (let run = 0; run < RUNS; run++) {
    for (const [name, extract] of Object.entries(methods)) {
      const dest = join(root, "dest");
      mkdirSync(dest);
      const started = process.hrtime.bigint();
      await extract(archive, dest);
      samples[name]?.push(Number(process.hrtime.bigint() - started) / 1e6);
      rmSync(dest, { recursive: true, force: true });
    }
  }
  const mib = statSync(archive).size / 1024 / 1024;
  console.log(`${label} (archive ${mib.toFixed(1)} MiB), ${RUNS} interleaved runs:`);
  for (const [name, times] of Object.entries(samples)) {
    const p50 = median(times);
    console.log(
      `  ${name.padEnd(24)} p50 ${p50.toFixed(0)} ms [${Math.min(...times).toFixed(0)}–${quantile(times, 1).toFixed(0)}]  ${(mib / (p50 / 1000)).toFixed(0)} MiB/s`,
    );
  }
  const [before, now] = Object.values(samples).map(median);
  console.log(`  ratio now/before (time): ${((now ?? 0) / (before ?? 1)).toFixed(2)}`);
}
