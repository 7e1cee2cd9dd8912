// Concurrent ExecSandbox on one VM sandbox (issue 10 item 3): N execs of `true` at once, several
// rounds, against warm sequential execs on the same sandbox in the same run; with --old-gateway,
// the same on a gateway build from before the exec connection pool (one SSH handshake per exec).
// Usage: bash bench/run.sh exec-concurrency-bench.ts [--concurrency 50] [--rounds 3] [--sequential 20]
//          [--old-gateway /path/to/old/openshell-gateway.js]
// Each gateway runs in a child process of this script (the harness picks its gateway binary from
// OPENSHELL_TEST_GATEWAY_BIN when it is loaded).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { SandboxPhase } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { findRepoRoot, freePort, pidsOf, waitFor } from "@openshell/testing/process";
import { quantile } from "./stats.js";

const { values } = parseArgs({
  options: {
    concurrency: { type: "string", default: "50" },
    rounds: { type: "string", default: "3" },
    sequential: { type: "string", default: "20" },
    "old-gateway": { type: "string" },
    child: { type: "string" },
  },
});
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const SEQUENTIAL = Number(values.sequential);
const REPO = findRepoRoot(import.meta.dirname);

interface GatewayFigures {
  label: string;
  sequentialMs: number[];
  concurrentMs: number[];
  roundMs: number[];
  failures: Record<string, number>;
}

async function timedExec(gw: RunningGateway, sandboxId: string): Promise<number> {
  const started = performance.now();
  let exit: number | undefined;
  for await (const event of gw.grpc.execSandbox({ sandboxId, command: ["true"] })) {
    if (event.payload.case === "exit") exit = event.payload.value.exitCode;
  }
  if (exit !== 0) throw new Error(`exit ${exit}`);
  return performance.now() - started;
}

/** Runs in a child: one gateway (the harness's binary), one VM sandbox, the measurements. */
async function measure(label: string): Promise<GatewayFigures> {
  const stateDir = makeStateDir();
  const port = await freePort();
  const gw = await startGateway({
    stateDir,
    port,
    driver: { name: "vm", dir: join(REPO, "packages", "driver-vm", "dist") },
    env: { OPENSHELL_VM_TEMPLATES: "off" }, // cold boots: what this bench measures
    extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--vm-mem-mib", "1024"],
    startTimeoutMs: 30_000,
  });
  const figures: GatewayFigures = { label, sequentialMs: [], concurrentMs: [], roundMs: [], failures: {} };
  try {
    const name = "exec-bench";
    const id = (await gw.grpc.createSandbox({ name, spec: {} })).sandbox!.id;
    await waitFor(
      async () => (await gw.grpc.getSandbox({ name })).sandbox?.phase === SandboxPhase.READY,
      180_000,
      () => `${name} not READY`,
    );
    await timedExec(gw, id);
    for (let i = 0; i < SEQUENTIAL; i++) figures.sequentialMs.push(await timedExec(gw, id));
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      const results = await Promise.allSettled(Array.from({ length: CONCURRENCY }, () => timedExec(gw, id)));
      figures.roundMs.push(performance.now() - started);
      for (const result of results) {
        if (result.status === "fulfilled") figures.concurrentMs.push(result.value);
        else {
          const error = ConnectError.from(result.reason);
          const key = `${error.code}: ${error.rawMessage.slice(0, 90)}`;
          figures.failures[key] = (figures.failures[key] ?? 0) + 1;
        }
      }
      // Let the old gateway's failed connections wind down between rounds.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  } finally {
    await gw.stop("SIGTERM");
    for (const pid of pidsOf(/^qemu-system/, stateDir)) process.kill(pid, "SIGKILL");
    removeStateDir(stateDir);
  }
  return figures;
}

function runChild(label: string, gatewayBin?: string): Promise<GatewayFigures> {
  return new Promise((resolve, reject) => {
    const args = [
      process.argv[1] as string,
      ...["--concurrency", String(CONCURRENCY), "--rounds", String(ROUNDS)],
      ...["--sequential", String(SEQUENTIAL), "--child", label],
    ];
    const env = { ...process.env, ...(gatewayBin ? { OPENSHELL_TEST_GATEWAY_BIN: gatewayBin } : {}) };
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) reject(new Error(`${label} run failed (exit ${code}):\n${out}`));
      else resolve(JSON.parse(line) as GatewayFigures);
    });
  });
}

const ms = (x: number) => `${x.toFixed(0)} ms`;

function report(f: GatewayFigures): void {
  const total = CONCURRENCY * ROUNDS;
  const ok = f.concurrentMs.length;
  console.log(`\n## ${f.label}`);
  console.log(
    `sequential warm exec      : p50 ${ms(quantile(f.sequentialMs, 0.5))}  p99 ${ms(quantile(f.sequentialMs, 0.99))}  (n=${f.sequentialMs.length})`,
  );
  console.log(
    `${CONCURRENCY} concurrent, per exec   : p50 ${ok ? ms(quantile(f.concurrentMs, 0.5)) : "-"}  p99 ${ok ? ms(quantile(f.concurrentMs, 0.99)) : "-"}  succeeded ${ok}/${total}`,
  );
  console.log(
    `${CONCURRENCY} concurrent, whole round: ${f.roundMs.map((x) => (x / 1000).toFixed(2)).join(" / ")} s`,
  );
  for (const [failure, count] of Object.entries(f.failures)) console.log(`  failed ×${count}: ${failure}`);
}

if (values.child) {
  const figures = await measure(values.child);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  console.log(
    `# exec-concurrency-bench  node ${process.version}  ${CONCURRENCY} concurrent × ${ROUNDS} rounds, ${SEQUENTIAL} sequential  ${new Date().toISOString()}`,
  );
  const oldBin = values["old-gateway"];
  const runs: GatewayFigures[] = [];
  if (oldBin) runs.push(await runChild("old gateway (a new SSH connection per exec)", oldBin));
  runs.push(await runChild("this gateway (exec connection pool)"));
  for (const figures of runs) report(figures);
  console.log(
    `\n${JSON.stringify(runs.map(({ label, failures, ...rest }) => ({ label, failures, ...summarise(rest) })))}`,
  );
}

function summarise(f: Omit<GatewayFigures, "label" | "failures">) {
  return {
    sequentialP50: quantile(f.sequentialMs, 0.5),
    sequentialP99: quantile(f.sequentialMs, 0.99),
    concurrentP50: quantile(f.concurrentMs, 0.5),
    concurrentP99: quantile(f.concurrentMs, 0.99),
    succeeded: f.concurrentMs.length,
    roundSeconds: f.roundMs.map((x) => x / 1000),
  };
}
