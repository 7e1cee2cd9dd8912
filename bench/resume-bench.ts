// Issue 6: time from `openshell gateway start` (a resume) until all N sandboxes are READY again,
// after a clean `gateway stop` (the VMs were powered off and boot again) and after kill -9 of the
// gateway (the VMs kept running; supervisors reconnect). The baseline in the same run is one cold
// sandbox create → READY. Optionally the same with the gateway in Docker (--docker, a private
// dockerd), and with the Docker compute driver (--docker-driver: sandboxes as containers on a private
// dockerd at /run/openshell-dd-docker; after a stop the containers kept running).
// Usage: bash bench/run.sh resume-bench.ts [--sandboxes 5] [--docker] [--docker-driver] [--skip-vm]
//   [--breakdown]: after the stop → start, when (from `gateway start`) the driver had each VM
//   restored and when each supervisor's session came, from the gateway's log.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import { startDockerDaemon } from "@openshell/testing/docker-harness";
import { freePort } from "@openshell/testing/process";
import { jsonLogRecords } from "./guest-logs.js";

const { values } = parseArgs({
  options: {
    sandboxes: { type: "string", default: "5" },
    docker: { type: "boolean", default: false },
    "docker-driver": { type: "boolean", default: false },
    "skip-vm": { type: "boolean", default: false },
    breakdown: { type: "boolean", default: false },
  },
});
const N = Number(values.sandboxes);
const TARGET_S = 20;

async function allReady(user: CliSandboxUser, names: string[], timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const listed = await user.run(["sandbox", "list", "-o", "json"]);
    if (listed.code === 0) {
      const ready = new Set(
        (JSON.parse(listed.stdout) as { name: string; phase: string }[])
          .filter((sandbox) => sandbox.phase === "SANDBOX_PHASE_READY")
          .map((sandbox) => sandbox.name),
      );
      if (names.every((name) => ready.has(name))) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error("sandboxes did not all come back READY");
}

async function must(user: CliSandboxUser, args: string[]): Promise<string> {
  const result = await user.run(args, { timeoutMs: 900_000 });
  if (result.code !== 0)
    throw new Error(`openshell ${args.join(" ")} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

type Kind = "process" | "docker" | "docker-driver";

async function measure(kind: Kind, user: CliSandboxUser): Promise<Record<string, number>> {
  const startArgs = { process: [], docker: ["--docker"], "docker-driver": ["--driver", "docker"] }[kind];
  await must(user, ["gateway", "start", ...startArgs]);
  const names = Array.from({ length: N }, (_, i) => `resume-${i}`);
  let coldCreate = 0;
  for (const name of names) {
    const started = performance.now();
    await must(user, ["sandbox", "create", "--name", name]);
    coldCreate ||= performance.now() - started;
  }
  await must(user, ["gateway", "stop"]);
  const gatewayLog = join(user.gatewayStateDir(), "logs", "gateway.log");
  const logOffset = existsSync(gatewayLog) ? statSync(gatewayLog).size : 0;
  const startedAt = Date.now();
  let started = performance.now();
  await must(user, ["gateway", "start"]);
  const startReturned = performance.now() - started;
  await allReady(user, names);
  const afterStop = performance.now() - started;
  if (values.breakdown) printRestoreBreakdown(gatewayLog, logOffset, startedAt);

  let afterKill = Number.NaN;
  if (kind !== "docker") {
    const pid = user.gatewayPid();
    if (pid) process.kill(pid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    started = performance.now();
    await must(user, ["gateway", "start"]);
    await allReady(user, names);
    afterKill = performance.now() - started;
  }
  await must(user, ["gateway", "destroy", "--yes"]);
  return { coldCreate, startReturned, afterStop, afterKill };
}

/** Seconds from `gateway start` of each restore and supervisor session in the gateway's log. */
function printRestoreBreakdown(gatewayLog: string, offset: number, startedAt: number): void {
  const wanted = new Map([
    ["VM restored from its memory snapshot", "restored"],
    ["supervisor session established", "session"],
    ["starting compute driver", "driver starting"],
    ["compute driver ready", "driver ready"],
  ]);
  const events: string[] = [];
  const text = readFileSync(gatewayLog).subarray(offset).toString("utf8");
  for (const entry of jsonLogRecords<{ sandbox_id: string; restore_ms: number }>(text)) {
    const what = entry.msg && wanted.get(entry.msg);
    if (!what || entry.time === undefined) continue;
    const at = ((new Date(entry.time).getTime() - startedAt) / 1000).toFixed(2);
    const restore = entry.restore_ms === undefined ? "" : ` (restore ${entry.restore_ms} ms)`;
    events.push(`  +${at} s ${what} ${entry.sandbox_id?.slice(0, 8) ?? ""}${restore}`);
  }
  console.log(`restore breakdown (from gateway start):\n${events.join("\n")}`);
}

const secs = (ms: number) => (Number.isNaN(ms) ? "—" : `${(ms / 1000).toFixed(1)} s`);
const kinds: Kind[] = [
  ...(values["skip-vm"] ? [] : (["process"] as const)),
  ...(values.docker ? (["docker"] as const) : []),
  ...(values["docker-driver"] ? (["docker-driver"] as const) : []),
];
const results: Record<string, Record<string, number>> = {};
console.log(`# resume-bench  node ${process.version}  ${N} sandboxes  (${new Date().toISOString()})`);
for (const kind of kinds) {
  const daemon =
    kind === "docker"
      ? await startDockerDaemon()
      : kind === "docker-driver"
        ? await startDockerDaemon({
            runDir: "/run/openshell-dd-docker",
            dataRoot: "/var/lib/openshell-dd-docker",
            addressPool: "base=10.215.0.0/16,size=24",
          })
        : undefined;
  const user = new CliSandboxUser({
    OPENSHELL_GATEWAY_PORT: String(await freePort()),
    ...(daemon ? { DOCKER_HOST: daemon.host } : {}),
    ...(kind === "docker-driver" ? { OPENSHELL_DOCKER_NETWORK: "openshell-dd-bench" } : {}),
  });
  try {
    results[kind] = await measure(kind, user);
  } finally {
    if (user.gatewayPid()) await user.run(["gateway", "destroy", "--yes"]);
    user.cleanUp();
    if (daemon && kind === "docker-driver") {
      await daemon.removeMatching("label=openshell.ai/managed-by=openshell");
    }
    await daemon?.stop();
  }
  const r = results[kind] as Record<string, number>;
  console.log(
    `${kind.padEnd(8)} stop → start → all ${N} READY: ${secs(r.afterStop as number)} (start returned after ${secs(r.startReturned as number)}); kill -9 → start → all READY: ${secs(r.afterKill as number)}; baseline: one cold create → READY ${secs(r.coldCreate as number)}; target under ${TARGET_S} s`,
  );
}
console.log(JSON.stringify({ bench: "resume-bench", sandboxes: N, targetS: TARGET_S, results }));
