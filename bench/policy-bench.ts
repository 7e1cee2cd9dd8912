// Policy control plane benchmarks (issue 12). Prints every figure with its same-run baseline:
//  1. `policy set --wait` → LOADED on a READY sandbox: UpdateConfig with a new policy (a network
//     rule with another port each time), then GetSandboxPolicyStatus(version) polled the way the
//     CLI's --wait does, until LOADED; p50/p99 per poll interval (the intervals alternate change by
//     change so the host's drift hits all alike), split into where the time goes (gateway write,
//     push delivered, LOADED reported, seen by the poll), next to the bare UpdateConfig and
//     GetSandboxPolicyStatus round trips of the same run. Host supervisors, or with --vm one QEMU
//     microVM sandbox through the VM driver.
//  2. (host only) UpdateConfig throughput with N sandboxes: C concurrent callers send distinct
//     policies round-robin over the sandboxes; updates/s, p50/p99 per call, and the time until
//     every supervisor has reported LOADED for its latest revision; baseline: Health and GetSandbox
//     at the same concurrency.
// Usage: bash bench/run.sh policy-bench.ts [--changes 50] [--poll-ms 50,100,1000] [--vm]
//          [--sandboxes 20] [--updates 1000] [--concurrency 1,10,50] [--skip-throughput]
//          [--supervisor BUNDLE] [--cpu-prof DIR]
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { clone, create } from "@bufbuild/protobuf";
import { PolicyStatus, SandboxPhase, sandboxv1 } from "@openshell/proto";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { findRepoRoot, freePort, isAlive, pidsOf, waitFor } from "@openshell/testing/process";
import {
  makeWorkdir,
  SUPERVISOR_BIN,
  startGatewayWithSupervisors,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { median, quantile } from "./stats.js";

const { values } = parseArgs({
  options: {
    changes: { type: "string", default: "50" },
    "poll-ms": { type: "string", default: "50,100,1000" },
    vm: { type: "boolean", default: false },
    sandboxes: { type: "string", default: "20" },
    updates: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "1,10,50" },
    "skip-throughput": { type: "boolean", default: false },
    /** Another supervisor bundle for the host supervisors (the VM's comes from its runtime). */
    supervisor: { type: "string", default: SUPERVISOR_BIN },
    /** Writes V8 CPU profiles of the gateway (and the processes it starts) into this directory. */
    "cpu-prof": { type: "string" },
  },
});
const CHANGES = Number(values.changes);
const POLL_MS = values["poll-ms"].split(",").map(Number);
const SANDBOXES = Number(values.sandboxes);
const UPDATES = Number(values.updates);
const CONCURRENCY = values.concurrency.split(",").map(Number);
const REPO = findRepoRoot(import.meta.dirname);
const WARMUP = 3;
const RULE = "policy_bench";
const PROFILE_ENV: Record<string, string> = values["cpu-prof"]
  ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values["cpu-prof"]}` }
  : {};

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const p50p99 = (xs: number[]) => `p50 ${ms(median(xs))} ms, p99 ${ms(quantile(xs, 0.99))} ms`;
const pad = (s: string, n = 44) => s.padEnd(n);

/** CPU time (user + system) a process has used, in ms (0 when it is gone). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** `base` with one network rule allowing curl to bench.example.com:`port`: a new policy per port. */
function withPort(base: sandboxv1.SandboxPolicy, port: number): sandboxv1.SandboxPolicy {
  const policy = clone(sandboxv1.SandboxPolicySchema, base);
  policy.networkPolicies[RULE] = create(sandboxv1.NetworkPolicyRuleSchema, {
    name: RULE,
    endpoints: [{ host: "bench.example.com", port }],
    binaries: [{ path: "/usr/bin/curl" }],
  });
  return policy;
}

/** Waits until the sandbox's latest revision is LOADED (its supervisor synced its start-up policy). */
async function waitForLoadedPolicy(gw: RunningGateway, name: string, timeoutMs: number) {
  let last = "none";
  await waitFor(
    async () => {
      try {
        const { revision } = await gw.grpc.getSandboxPolicyStatus({ name });
        last = `v${revision?.version} ${PolicyStatus[revision?.status ?? 0]}`;
        return revision?.status === PolicyStatus.LOADED;
      } catch {
        return false;
      }
    },
    timeoutMs,
    () => `sandbox ${name}: start-up policy not LOADED (last ${last})`,
  );
}

/** The policy the gateway holds for the sandbox (what `policy get --full` prints). */
async function currentPolicy(gw: RunningGateway, sandboxId: string) {
  const { policy } = await gw.grpc.getSandboxConfig({ sandboxId });
  if (!policy) throw new Error(`sandbox ${sandboxId} has no policy`);
  return policy;
}

/** When each config_changed for a policy version reached the host supervisor (from its debug log). */
function pushTimes(logFile: string): Map<number, number> {
  const times = new Map<number, number>();
  let text = "";
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return times;
  }
  for (const line of text.split("\n")) {
    if (!line.includes("gateway pushed config_changed")) continue;
    try {
      const entry = JSON.parse(line) as { time: string | number; policy_version?: number };
      const version = entry.policy_version ?? 0;
      if (!times.has(version)) times.set(version, new Date(entry.time).getTime());
    } catch {
      // not JSON
    }
  }
  return times;
}

interface Change {
  pollMs: number;
  version: number;
  sent: number;
  /** UpdateConfig answered. */
  updated: number;
  /** The poll that said LOADED answered. */
  seen: number;
  /** The gateway's own record: revision written, LOADED reported. */
  createdAtMs: number;
  loadedAtMs: number;
  polls: number;
}

/** One `policy set --wait`: UpdateConfig, then GetSandboxPolicyStatus(version) at once and every `pollMs`. */
async function setAndWait(gw: RunningGateway, name: string, policy: sandboxv1.SandboxPolicy, pollMs: number) {
  const sent = now();
  const { version } = await gw.grpc.updateConfig({ name, policy });
  const updated = now();
  for (let polls = 1; ; polls++) {
    const { revision } = await gw.grpc.getSandboxPolicyStatus({ name, version });
    const status = revision?.status;
    if (status === PolicyStatus.LOADED) {
      return {
        pollMs,
        version,
        sent,
        updated,
        seen: now(),
        createdAtMs: Number(revision?.createdAtMs),
        loadedAtMs: Number(revision?.loadedAtMs),
        polls,
      } satisfies Change;
    }
    if (status !== PolicyStatus.PENDING) {
      throw new Error(`version ${version}: ${PolicyStatus[status ?? 0]} ${revision?.loadError ?? ""}`);
    }
    if (now() - sent > 60_000) throw new Error(`version ${version} not LOADED within 60 s`);
    await sleep(pollMs);
  }
}

/** Part 1 on a READY sandbox whose start-up policy is LOADED. */
async function setToLoaded(gw: RunningGateway, name: string, sandboxId: string, supervisorLogFile?: string) {
  const base = await currentPolicy(gw, sandboxId);
  let port = 20_000;
  for (let i = 0; i < WARMUP; i++) await setAndWait(gw, name, withPort(base, port++), POLL_MS[0] ?? 50);

  const changes: Change[] = [];
  const bareUpdate: number[] = [];
  const bareStatus: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    for (const pollMs of POLL_MS) {
      const change = await setAndWait(gw, name, withPort(base, port++), pollMs);
      changes.push(change);
      // Baselines between the changes: UpdateConfig with the policy that is in force (same hash:
      // answers its version, writes nothing, pushes nothing) and one GetSandboxPolicyStatus.
      const policy = withPort(base, port - 1);
      let t = now();
      const same = await gw.grpc.updateConfig({ name, policy });
      bareUpdate.push(now() - t);
      if (same.version !== change.version) throw new Error("the same policy made a new version");
      t = now();
      await gw.grpc.getSandboxPolicyStatus({ name, version: change.version });
      bareStatus.push(now() - t);
    }
  }

  const pushes = supervisorLogFile ? pushTimes(supervisorLogFile) : new Map<number, number>();
  const newUpdate = changes.map((c) => c.updated - c.sent);
  console.log(`${pad("UpdateConfig, new revision (in the changes)")}: ${p50p99(newUpdate)}`);
  console.log(`${pad("UpdateConfig, unchanged policy (bare)")}: ${p50p99(bareUpdate)}`);
  console.log(`${pad("GetSandboxPolicyStatus (bare)")}: ${p50p99(bareStatus)}`);
  const oneUpdate = median(newUpdate);
  for (const pollMs of POLL_MS) {
    const mine = changes.filter((c) => c.pollMs === pollMs);
    const total = mine.map((c) => c.seen - c.sent);
    const polls = mine.map((c) => c.polls);
    console.log(
      `${pad(`set → LOADED seen, poll every ${pollMs} ms`)}: ${p50p99(total)} (n=${mine.length}, polls p50 ${median(polls)}, max ${Math.max(...polls)}) = ${(median(total) / oneUpdate).toFixed(1)}× one UpdateConfig`,
    );
  }
  // Where the time goes, over all changes (independent of the poll interval up to "reported").
  const reported = changes.map((c) => c.loadedAtMs - c.sent);
  const written = changes.map((c) => c.createdAtMs - c.sent);
  const serverSide = changes.map((c) => c.loadedAtMs - c.createdAtMs);
  console.log(`${pad("send → revision written (gateway clock)")}: ${p50p99(written)}  (ms clock, same host)`);
  const pushed = changes.flatMap((c) => {
    const at = pushes.get(c.version);
    return at === undefined ? [] : [at - c.sent];
  });
  if (pushed.length > 0) {
    console.log(`${pad("send → config_changed at the supervisor")}: ${p50p99(pushed)} (n=${pushed.length})`);
  }
  console.log(`${pad("send → LOADED reported (no poll)")}: ${p50p99(reported)}`);
  console.log(`${pad("revision written → LOADED reported")}: ${p50p99(serverSide)}`);
  console.log(
    `${pad("upstream (arithmetic, not measured)")}: supervisor poll 10 s → detected after U(0,10) s, CLI poll 1 s on top: 0–11 s, p50 ≈ 5.5 s`,
  );
  return { changes, bareUpdate, bareStatus };
}

async function runConcurrent(count: number, concurrency: number, call: (i: number) => Promise<unknown>) {
  const latencies: number[] = new Array(count);
  let next = 0;
  const started = now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t = now();
        await call(i);
        latencies[i] = now() - t;
      }
    }),
  );
  const wall = now() - started;
  return { latencies, wall, perSecond: (count / wall) * 1000 };
}

/** Part 2: UpdateConfig throughput over `names` (all READY, start-up policies LOADED). */
async function throughput(gw: RunningGateway, names: string[], ids: string[], supervisorPids: number[]) {
  const supervisorsCpu = () => supervisorPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const gatewayCpu = () => cpuMs(gw.pid);
  const bases = await Promise.all(ids.map((id) => currentPolicy(gw, id)));
  let port = 30_000;
  const line = (what: string, r: Awaited<ReturnType<typeof runConcurrent>>, gatewayCpuMs: number) =>
    `${pad(what, 30)}: ${r.perSecond.toFixed(0).padStart(5)}/s  ${p50p99(r.latencies)}  (${UPDATES} in ${(r.wall / 1000).toFixed(2)} s; gateway CPU ${(gatewayCpuMs / UPDATES).toFixed(2)} ms/call)`;
  const measured = async (call: (i: number) => Promise<unknown>, concurrency: number) => {
    const cpu = gatewayCpu();
    const r = await runConcurrent(UPDATES, concurrency, call);
    return { r, cpu: gatewayCpu() - cpu };
  };
  for (const concurrency of CONCURRENCY) {
    console.log(`-- ${concurrency} concurrent caller(s), ${UPDATES} calls each, ${names.length} sandboxes`);
    const health = await measured(() => gw.grpc.health({}), concurrency);
    console.log(line("Health", health.r, health.cpu));
    const get = await measured((i) => gw.grpc.getSandbox({ name: names[i % names.length] }), concurrency);
    console.log(line("GetSandbox", get.r, get.cpu));
    const latest = new Map<string, number>();
    const earliest = new Map<string, number>();
    const first = port;
    const cpuBefore = { gateway: gatewayCpu(), supervisors: supervisorsCpu() };
    const update = await measured(async (i) => {
      const k = i % names.length;
      const name = names[k] as string;
      const { version } = await gw.grpc.updateConfig({
        name,
        policy: withPort(bases[k] as sandboxv1.SandboxPolicy, first + i),
      });
      latest.set(name, Math.max(latest.get(name) ?? 0, version));
      earliest.set(name, Math.min(earliest.get(name) ?? version, version));
    }, concurrency);
    port += UPDATES;
    const lastAnswered = now();
    console.log(
      `${line("UpdateConfig (new policy)", update.r, update.cpu)}  = ${(update.r.perSecond / get.r.perSecond).toFixed(2)}× GetSandbox's rate`,
    );
    // Every supervisor reports LOADED for its latest revision (intermediate ones may be skipped:
    // a supervisor coalesces the pushes that arrive while it syncs).
    const pending = new Set(names);
    while (pending.size > 0) {
      if (now() - lastAnswered > 120_000) throw new Error(`not LOADED after 120 s: ${[...pending]}`);
      await Promise.all(
        [...pending].map(async (name) => {
          const version = latest.get(name) ?? 0;
          const { revision } = await gw.grpc.getSandboxPolicyStatus({ name, version });
          if (revision?.status === PolicyStatus.LOADED) pending.delete(name);
        }),
      );
      if (pending.size > 0) await sleep(50);
    }
    const allLoaded = now();
    const cpu = {
      gateway: gatewayCpu() - cpuBefore.gateway,
      supervisors: supervisorsCpu() - cpuBefore.supervisors,
    };
    let loaded = 0;
    let skipped = 0;
    let other = 0;
    for (const name of names) {
      const { revisions } = await gw.grpc.listSandboxPolicies({ name, limit: 1000 });
      const from = earliest.get(name) ?? 0;
      for (const r of revisions.filter((r) => r.version >= from)) {
        // A revision that was loaded keeps its loaded_at_ms when a newer one supersedes it.
        if (r.loadedAtMs > 0n) loaded++;
        else if (r.status === PolicyStatus.SUPERSEDED) skipped++;
        else other++;
      }
    }
    console.log(
      `${pad("all supervisors LOADED their latest", 30)}: ${ms(allLoaded - lastAnswered)} ms after the last UpdateConfig answered (${((allLoaded - lastAnswered + update.r.wall) / 1000).toFixed(2)} s after the first was sent); revisions of this round: ${loaded} loaded, ${skipped} superseded before a supervisor loaded them${other ? `, ${other} other` : ""}`,
    );
    console.log(
      `${pad("CPU, updates until all LOADED", 30)}: gateway ${(cpu.gateway / UPDATES).toFixed(2)} ms/update, ${names.length} supervisors ${(cpu.supervisors / UPDATES).toFixed(2)} ms/update`,
    );
  }
}

async function hostRun() {
  const stateDir = makeStateDir();
  const workdir = makeWorkdir();
  const ids: string[] = [];
  let gw: RunningGateway | undefined;
  try {
    gw = await startGatewayWithSupervisors({
      stateDir,
      workdir,
      env: { OPENSHELL_TEST_DRIVER_SUPERVISOR: values.supervisor, ...PROFILE_ENV },
    });
    console.log(
      `# policy-bench (host supervisors)  node ${process.version}  ${new Date().toISOString()}  load ${loadAverage()}`,
    );
    const name = "policy-0";
    const id = (await gw.grpc.createSandbox({ spec: {}, name })).sandbox!.id;
    ids.push(id);
    await waitForPhase(gw, name, SandboxPhase.READY, 60_000);
    await waitForLoadedPolicy(gw, name, 60_000);
    console.log(`## 1. policy set --wait → LOADED, ${CHANGES} changes per poll interval`);
    await setToLoaded(gw, name, id, join(stateDir, "drv", "supervisors", `${id}.log`));

    if (values["skip-throughput"]) return;
    const names = [name];
    for (let i = 1; i < SANDBOXES; i++) {
      names.push(`policy-${i}`);
      ids.push((await gw.grpc.createSandbox({ spec: {}, name: `policy-${i}` })).sandbox!.id);
    }
    for (const n of names) await waitForPhase(gw, n, SandboxPhase.READY, 180_000);
    for (const n of names) await waitForLoadedPolicy(gw, n, 120_000);
    console.log(`## 2. UpdateConfig throughput, ${SANDBOXES} sandboxes  load ${loadAverage()}`);
    await throughput(
      gw,
      names,
      ids,
      ids.map((sandboxId) => supervisorPid(stateDir, sandboxId)),
    );
  } finally {
    await gw?.stop("SIGTERM");
    // Supervisors outlive the gateway: SIGTERM first (a --cpu-prof profile is written on a clean exit).
    const pids = ids.flatMap((sandboxId) => {
      try {
        return [supervisorPid(stateDir, sandboxId)];
      } catch {
        return []; // never started
      }
    });
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, "SIGTERM");
    for (let waited = 0; waited < 5_000 && pids.some(isAlive); waited += 100) await sleep(100);
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, "SIGKILL");
    removeStateDir(stateDir);
    rmSync(workdir, { recursive: true, force: true });
  }
}

async function vmRun() {
  const qemuPids = (dir: string) => pidsOf(/^qemu-system/, dir);
  const stateDir = makeStateDir();
  const port = await freePort();
  let gw: RunningGateway | undefined;
  try {
    gw = await startGateway({
      stateDir,
      port,
      driver: { name: "vm", dir: join(REPO, "packages", "driver-vm", "dist") },
      env: { OPENSHELL_VM_TEMPLATES: "off" }, // cold boots: what this bench measures
      extraArgs: ["--grpc-endpoint", `http://127.0.0.1:${port}`, "--vm-mem-mib", "1024"],
      startTimeoutMs: 30_000,
    });
    const accel = /"accelerator":"(\w+)"/.exec(gw.output());
    console.log(
      `# policy-bench --vm  node ${process.version}  accelerator ${accel?.[1]}  ${new Date().toISOString()}  load ${loadAverage()}`,
    );
    const name = "policy-vm";
    const started = now();
    const id = (await gw.grpc.createSandbox({ spec: {}, name })).sandbox!.id;
    await waitForPhase(gw, name, SandboxPhase.READY, 240_000);
    await waitForLoadedPolicy(gw, name, 120_000).catch((error: Error) => {
      throw new Error(
        `${error.message}: does the staged VM runtime's supervisor predate the policy sync? Re-stage it (bash scripts/setup.sh, or OPENSHELL_VM_RUNTIME_DIR with stage-vm-runtime.sh)`,
      );
    });
    console.log(`create → READY with its start-up policy LOADED: ${((now() - started) / 1000).toFixed(1)} s`);
    console.log(`## 1. policy set --wait → LOADED on a VM sandbox, ${CHANGES} changes per poll interval`);
    await setToLoaded(gw, name, id);
    await gw.grpc.deleteSandbox({ name });
    await waitFor(
      async () => qemuPids(stateDir).length === 0,
      60_000,
      () => "qemu left after delete",
    );
  } finally {
    await gw?.stop("SIGTERM");
    for (const pid of qemuPids(stateDir)) process.kill(pid, "SIGKILL");
    removeStateDir(stateDir);
  }
}

function loadAverage(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

await (values.vm ? vmRun() : hostRun());
