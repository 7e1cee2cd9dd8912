import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { ensureSandboxProcessIdentity, parsePolicyYaml, policyToYaml } from "@openshell/policy";
import { EVERY_FIELD_POLICY_YAML, EXAMPLE_POLICY_YAML } from "@openshell/policy/test-fixtures";
import { PolicyStatus, SandboxPhase, sandboxv1 } from "@openshell/proto";
import { CliSandboxUser } from "@openshell/testing/cli-harness";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  supervisorTokenOf,
} from "@openshell/testing/gateway-harness";
import { freePort, waitFor } from "@openshell/testing/process";
import {
  makeWorkdir,
  startGatewayWithSupervisors,
  supervisorLog,
  supervisorPid,
  waitForPhase,
} from "@openshell/testing/sandbox-harness";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/** Anything a terminal would act on (tab and line feed aside). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: what this test looks for
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/** The static part of EVERY_FIELD_POLICY_YAML: what its sandbox is created with. */
const EVERY_FIELD_BASE = `version: 1
filesystem_policy:
  include_workdir: false
  read_only: [/usr, /lib]
  read_write: [/sandbox]
landlock:
  compatibility: hard_requirement
process:
  run_as_user: sandbox
  run_as_group: sandbox
`;

/** The static part of the upstream example, and the base of the other sandboxes. */
const EXAMPLE_BASE = `version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /proc, /dev/urandom, /app, /etc, /var/log]
  read_write: [/sandbox, /tmp, /dev/null]
landlock:
  compatibility: best_effort
process:
  run_as_user: sandbox
  run_as_group: sandbox
`;

/** EXAMPLE_BASE plus one network rule to `host:port`. */
function withEndpoint(host: string, port: number): string {
  return `${EXAMPLE_BASE}network_policies:
  api:
    endpoints:
      - { host: ${host}, port: ${port} }
    binaries:
      - { path: /usr/bin/curl }
`;
}

/** The policy as the gateway stores it (identity filled in), as comparable JSON. */
function stored(yaml: string) {
  const policy = parsePolicyYaml(yaml);
  ensureSandboxProcessIdentity(policy);
  return toJson(sandboxv1.SandboxPolicySchema, policy);
}

/** The YAML after the `---` line of `policy get --full`. */
function fullYaml(stdout: string): string {
  const at = stdout.indexOf("---\n");
  expect(at, stdout).toBeGreaterThanOrEqual(0);
  return stdout.slice(at + 4);
}

/**
 * `openshell policy` and `openshell settings` through the built CLI against a real gateway whose
 * sandboxes are real supervisors on this host (they receive each new revision by push, validate it
 * and report it loaded or failed).
 */
describe("openshell policy and settings", () => {
  let stateDir: string;
  let workdir: string;
  let files: string;
  let gw: RunningGateway;
  let user: CliSandboxUser;
  const ids = new Map<string, string>();
  const cli = (args: string[], options: { timeoutMs?: number } = {}) =>
    user.run(["--gateway-endpoint", gw.url, ...args], options);
  const file = (name: string, text: string) => {
    const path = join(files, name);
    writeFileSync(path, text);
    return path;
  };

  /** A READY sandbox created over gRPC with `policyYaml` as its creation policy. */
  async function sandbox(name: string, policyYaml: string) {
    const created = await gw.grpc.createSandbox({ name, spec: { policy: parsePolicyYaml(policyYaml) } });
    ids.set(name, created.sandbox!.id);
    await waitForPhase(gw, name, SandboxPhase.READY).catch((error: Error) => {
      throw new Error(`${error.message}\n${supervisorLog(stateDir, created.sandbox!.id)}`);
    });
    // The supervisor's start-up sync (which may add baseline paths as a version of its own) is done
    // when it has loaded a version: only then is the next version the test's.
    await waitFor(
      async () =>
        ((await gw.grpc.getSandboxPolicyStatus({ name }).catch(() => undefined))?.activeVersion ?? 0) > 0,
      20_000,
      () =>
        `the start-up policy of ${name} was never loaded\n${supervisorLog(stateDir, created.sandbox!.id)}`,
    );
  }

  async function versions(name: string): Promise<number> {
    return (await gw.grpc.listSandboxPolicies({ name, limit: 100 })).revisions.length;
  }

  beforeAll(async () => {
    stateDir = makeStateDir();
    workdir = makeWorkdir();
    files = mkdtempSync(join(tmpdir(), "policy-cli-"));
    gw = await startGatewayWithSupervisors({ stateDir, workdir });
    user = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(await freePort()) });
    await Promise.all([
      sandbox("example", EXAMPLE_BASE),
      sandbox("every", EVERY_FIELD_BASE),
      sandbox("plain", EXAMPLE_BASE),
    ]);
  });

  afterEach((context) => {
    if (context.task.result?.state === "fail")
      for (const [name, id] of ids)
        process.stderr.write(`supervisor ${name}:\n${supervisorLog(stateDir, id)}\n`);
  });

  afterAll(async () => {
    for (const id of ids.values()) {
      try {
        process.kill(supervisorPid(stateDir, id), "SIGCONT");
      } catch {}
    }
    await gw?.stop();
    for (const id of ids.values()) {
      try {
        process.kill(supervisorPid(stateDir, id), "SIGKILL");
      } catch {}
    }
    user?.cleanUp();
    if (stateDir) removeStateDir(stateDir);
    if (workdir) rmSync(workdir, { recursive: true, force: true });
    if (files) rmSync(files, { recursive: true, force: true });
  });

  it("upstream's example and a policy with every field round-trip through policy set --wait / policy get --full", async () => {
    for (const [name, yaml] of [
      ["example", EXAMPLE_POLICY_YAML],
      ["every", EVERY_FIELD_POLICY_YAML],
    ] as const) {
      const set = await cli(["policy", "set", name, "--policy", file(`${name}.yaml`, yaml), "--wait"]);
      expect(set.code, set.stderr).toBe(0);
      const submitted = /Policy version (\d+) submitted \(hash: ([0-9a-f]{12})\)/.exec(set.stderr);
      expect(submitted, set.stderr).not.toBeNull();
      const version = Number(submitted?.[1]);
      expect(set.stderr).toContain(`Policy version ${version} loaded (active version: ${version})`);

      const got = await cli(["policy", "get", name, "--full"]);
      expect(got.code, got.stderr).toBe(0);
      expect(got.stdout).toMatch(new RegExp(`Version: +${version}\\n`));
      expect(got.stdout).toMatch(/Status: +loaded/);
      expect(got.stdout).toContain(`Hash:            ${submitted?.[2]}`);
      const text = fullYaml(got.stdout);
      // The same policy (protos compared), written as upstream writes it.
      expect(stored(text)).toEqual(stored(yaml));
      expect(text).toBe(policyToYaml(parsePolicyYaml(yaml)));

      const json = JSON.parse((await cli(["policy", "get", name, "--full", "-o", "json"])).stdout);
      expect(json).toMatchObject({ sandbox: name, version, status: "loaded", active_version: version });
      expect(json.policy_hash.startsWith(submitted?.[2])).toBe(true);

      // The same file again keeps its version.
      const again = await cli(["policy", "set", name, "--policy", join(files, `${name}.yaml`)]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(`Policy unchanged (version ${version}, hash: ${submitted?.[2]})`);

      // sandbox get --policy-only prints the policy in force.
      const effective = await cli(["sandbox", "get", name, "--policy-only"]);
      expect(effective.code, effective.stderr).toBe(0);
      expect(stored(effective.stdout)).toEqual(stored(yaml));
    }
  });

  it("a policy the supervisor refuses exits 1 and the previous version stays in force; policy list shows the history", async () => {
    const good = await cli([
      "policy",
      "set",
      "plain",
      "--policy",
      file("good.yaml", withEndpoint("a.example.com", 443)),
    ]);
    expect(good.code, good.stderr).toBe(0);
    const loaded = await cli(["policy", "get", "plain", "-o", "json"]);
    const before = JSON.parse(loaded.stdout).version as number;
    const waited = await cli(["policy", "set", "plain", "--policy", join(files, "good.yaml"), "--wait"]);
    expect(waited.stderr).toContain(`Policy version ${before} loaded (active version: ${before})`);

    // SQL enforcement passes the gateway but not the supervisor's L7 checks.
    const refused = await cli([
      "policy",
      "update",
      "plain",
      "--add-endpoint",
      "db.example.com:5432:full:sql:enforce",
      "--wait",
    ]);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain(`Policy version ${before + 1} submitted`);
    expect(refused.stderr).toMatch(
      new RegExp(`Policy version ${before + 1} failed to load: .*SQL enforcement`),
    );
    expect(refused.stderr).toContain(`The previous policy (version ${before}) stays in force`);
    const status = JSON.parse((await cli(["policy", "get", "plain", "-o", "json"])).stdout);
    expect(status).toMatchObject({ version: before + 1, status: "failed", active_version: before });
    // The policy in force is still the loaded one.
    const inForce = await cli(["sandbox", "get", "plain", "--policy-only", "-o", "json"]);
    expect(JSON.parse(inForce.stdout)).toMatchObject({ version: before, loaded: true });
    expect(inForce.stdout).not.toContain("db.example.com");

    // A fix through policy update loads, and the dry run before it sends nothing.
    const dry = await cli([
      "policy",
      "update",
      "plain",
      "--remove-rule",
      "allow_db_example_com_5432",
      "--dry-run",
    ]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("- ");
    expect(dry.stdout).toContain("db.example.com");
    expect(await versions("plain")).toBe(before + 1);
    const fixed = await cli([
      "policy",
      "update",
      "plain",
      "--remove-rule",
      "allow_db_example_com_5432",
      "--wait",
    ]);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stderr).toContain(`Policy version ${before + 2} loaded (active version: ${before + 2})`);

    const list = await cli(["policy", "list", "plain"]);
    expect(list.code, list.stderr).toBe(0);
    const rows = list.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^VERSION +HASH +STATUS +CREATED +LOADED +ERROR$/);
    expect(rows[1]).toMatch(new RegExp(`^${before + 2} \\* +[0-9a-f]{12} +loaded `));
    expect(rows[2]).toMatch(new RegExp(`^${before + 1} +[0-9a-f]{12} +failed .*SQL enforcement`));
    expect(rows[3]).toMatch(new RegExp(`^${before} +[0-9a-f]{12} +superseded `));
    const json = JSON.parse((await cli(["policy", "list", "plain", "--limit", "2", "-o", "json"])).stdout);
    expect(json.map((r: { version: number; status: string }) => [r.version, r.status])).toEqual([
      [before + 2, "loaded"],
      [before + 1, "failed"],
    ]);
  });

  it("bad files exit 2 with FILE:LINE and store nothing; an unknown sandbox exits 4", async () => {
    const count = await versions("plain");
    const cases: [string, string, RegExp][] = [
      ["broken.yaml", "version: 1\nnetwork_policies: [\n", /broken\.yaml:\d+: invalid YAML/],
      ["unknown.yaml", `${EXAMPLE_BASE}surprise: true\n`, /unknown\.yaml:11: surprise: .*unknown field/],
      [
        "dots.yaml",
        EXAMPLE_BASE.replace("[/sandbox, /tmp, /dev/null]", "[/sandbox, /tmp/../etc]"),
        /dots\.yaml:5: filesystem_policy\.read_write\[1\]: .*'\.\.' traversal/,
      ],
    ];
    for (const [name, text, reason] of cases) {
      const result = await cli(["policy", "set", "plain", "--policy", file(name, text)]);
      expect({ name, code: result.code }).toEqual({ name, code: 2 });
      expect(result.stderr).toMatch(reason);
      expect(result.stderr).toContain("nothing was sent");
    }
    expect(await versions("plain")).toBe(count);

    const gone = await cli(["policy", "set", "nope", "--policy", join(files, "good.yaml")]);
    expect(gone.code).toBe(4);
    expect(gone.stderr).toContain("sandbox 'nope' not found (see: openshell sandbox list)");
    for (const args of [
      ["policy", "get", "nope"],
      ["policy", "list", "nope"],
      ["settings", "get", "nope"],
    ]) {
      const result = await cli(args);
      expect({ args, code: result.code }).toEqual({ args, code: 4 });
    }
    const noRevision = await cli(["policy", "get", "plain", "--rev", "999"]);
    expect(noRevision.code).toBe(4);
    expect(noRevision.stderr).toContain("openshell policy list plain");
    const badFlag = await cli(["policy", "update", "plain", "--add-endpoint", "nohost"]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("--add-endpoint expects host:port");
  });

  it("sandbox create --policy with a bad file creates nothing and starts no gateway", async () => {
    const bad = join(files, "dots.yaml");
    const viaGateway = await cli(["sandbox", "create", "--name", "never", "--policy", bad, "--", "true"]);
    expect(viaGateway.code).toBe(2);
    expect(viaGateway.stderr).toMatch(/dots\.yaml:5: filesystem_policy\.read_write\[1\]/);
    expect((await gw.grpc.listSandboxes({})).sandboxes.map((s) => s.name)).not.toContain("never");
    const fresh = new CliSandboxUser({ OPENSHELL_GATEWAY_PORT: String(await freePort()) });
    try {
      const result = await fresh.run(["sandbox", "create", "--policy", bad, "--", "true"]);
      expect(result.code).toBe(2);
      expect(existsSync(fresh.gatewayStateDir())).toBe(false);
    } finally {
      fresh.cleanUp();
    }
  });

  it("policy set --wait exits 124 when the sandbox does not report in time; a load error is shown terminal-safe", async () => {
    const pid = supervisorPid(stateDir, ids.get("example") as string);
    process.kill(pid, "SIGSTOP");
    try {
      const result = await cli([
        "policy",
        "set",
        "example",
        "--policy",
        file("frozen.yaml", withEndpoint("frozen.example.com", 443)),
        "--wait",
        "--timeout",
        "2",
      ]);
      expect(result.code, result.stderr).toBe(124);
      const timedOut = /Timeout waiting for policy version (\d+) to load/.exec(result.stderr);
      expect(timedOut, result.stderr).not.toBeNull();

      // A load error is the supervisor's text: a hostile one is shown escaped, exact in JSON.
      const hostile = "bad\u001b]0;pwned\u0007 \u001b[2Jrule\u009b31m";
      await gw.grpc.reportPolicyStatus(
        {
          sandboxId: ids.get("example") as string,
          version: Number(timedOut?.[1]),
          status: PolicyStatus.FAILED,
          loadError: hostile,
        },
        { headers: { authorization: `Bearer ${supervisorTokenOf(stateDir, ids.get("example") as string)}` } },
      );
      for (const args of [
        ["policy", "get", "example"],
        ["policy", "list", "example"],
      ]) {
        const shown = await cli(args);
        expect(shown.code, shown.stderr).toBe(0);
        expect(shown.stdout).not.toMatch(RAW_CONTROL);
        expect(shown.stdout).toContain("bad\\x1b]0;pwned\\x07");
      }
      const json = JSON.parse((await cli(["policy", "get", "example", "-o", "json"])).stdout);
      expect(json.load_error).toBe(hostile);
    } finally {
      process.kill(pid, "SIGCONT");
    }
  });

  it("a global policy overrides every sandbox and blocks sandbox updates until policy delete --global", async () => {
    const global = file("global.yaml", withEndpoint("global.example.com", 443));
    const unconfirmed = await cli(["policy", "set", "--global", "--policy", global]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain("pass --yes to confirm");
    expect((await cli(["policy", "get", "--global"])).code).toBe(4);

    const set = await cli(["policy", "set", "--global", "--yes", "--policy", global]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stderr).toMatch(/Global policy version 1 set \(hash: [0-9a-f]{12}\)/);
    const status = await cli(["policy", "get", "--global", "--full"]);
    expect(status.stdout).toMatch(/Status: +loaded/);
    expect(stored(fullYaml(status.stdout))).toEqual(stored(withEndpoint("global.example.com", 443)));
    const effective = await cli(["sandbox", "get", "plain", "--policy-only"]);
    expect(effective.stdout).toContain("global.example.com");
    expect((await cli(["policy", "get", "plain"])).stderr).toContain(
      "A global policy (version 1) overrides this sandbox's policy",
    );

    const blocked = await cli(["policy", "set", "plain", "--policy", join(files, "good.yaml")]);
    expect(blocked.code).toBe(5);
    expect(blocked.stderr).toContain("policy is managed globally");
    expect(blocked.stderr).toContain("openshell policy delete --global");
    const blockedUpdate = await cli(["policy", "update", "plain", "--add-endpoint", "x.example.com:443"]);
    expect(blockedUpdate.code).toBe(5);
    expect((await cli(["policy", "list", "--global"])).stdout).toMatch(/^1 +[0-9a-f]{12} +loaded/m);

    expect((await cli(["policy", "delete"])).code).toBe(2);
    const deleted = await cli(["policy", "delete", "--global", "--yes"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stderr).toContain("Global policy deleted");
    expect((await cli(["sandbox", "get", "plain", "--policy-only"])).stdout).not.toContain(
      "global.example.com",
    );
    const after = await cli([
      "policy",
      "set",
      "plain",
      "--policy",
      file("after.yaml", withEndpoint("b.example.com", 443)),
      "--wait",
    ]);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stderr).toMatch(/Policy version \d+ loaded/);
  });

  it("settings set/get/delete on the sandbox and the global scope", async () => {
    const key = "ocsf_json_enabled";
    const initial = await cli(["settings", "get", "plain"]);
    expect(initial.code, initial.stderr).toBe(0);
    expect(initial.stdout).toMatch(new RegExp(`^${key} +<unset> +unset$`, "m"));

    expect((await cli(["settings", "set", "plain", "--key", key, "--value", "yes"])).code).toBe(0);
    let json = JSON.parse((await cli(["settings", "get", "plain", "-o", "json"])).stdout);
    expect(json.settings[key]).toEqual({ value: "true", scope: "sandbox" });

    const unconfirmed = await cli(["settings", "set", "--global", "--key", key, "--value", "off"]);
    expect(unconfirmed.code).toBe(2);
    const global = await cli(["settings", "set", "--global", "--yes", "--key", key, "--value", "off"]);
    expect(global.code, global.stderr).toBe(0);
    json = JSON.parse((await cli(["settings", "get", "plain", "-o", "json"])).stdout);
    expect(json.settings[key]).toEqual({ value: "false", scope: "global" });
    expect((await cli(["settings", "get", "--global"])).stdout).toMatch(new RegExp(`^${key} +false$`, "m"));

    const blocked = await cli(["settings", "set", "plain", "--key", key, "--value", "on"]);
    expect(blocked.code).toBe(5);
    expect(blocked.stderr).toContain(`openshell settings delete --key ${key} --global`);
    expect((await cli(["settings", "delete", "plain", "--key", key])).code).toBe(5);

    expect((await cli(["settings", "delete", "--global", "--yes", "--key", key])).code).toBe(0);
    json = JSON.parse((await cli(["settings", "get", "plain", "-o", "json"])).stdout);
    expect(json.settings[key]).toEqual({ value: "true", scope: "sandbox" });
    const deleted = await cli(["settings", "delete", "plain", "--key", key]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stderr).toContain(`Setting '${key}' deleted`);
    const again = await cli(["settings", "delete", "plain", "--key", key]);
    expect(again.stderr).toContain("was not set");

    const badValue = await cli(["settings", "set", "plain", "--key", key, "--value", "maybe"]);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain("expects a bool value");
    const badKey = await cli(["settings", "set", "plain", "--key", "nope", "--value", "1"]);
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toContain("Allowed keys: ocsf_json_enabled");
  });
});
