import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { sandboxv1 } from "@openshell/proto";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { PolicyState } from "../policy/policy-state.js";
import { ChildConfiner, launcherProblem } from "./child-confiner.js";

/** The start-up probe that makes the supervisor fail closed (issue 13), with stand-in launchers. */
const dir = mkdtempSync(join(tmpdir(), "confiner-probe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function launcher(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function installed(): PolicyState {
  const state = new PolicyState();
  state.install({
    policy: create(sandboxv1.SandboxPolicySchema, {
      version: 1,
      filesystem: { readOnly: ["/usr"], readWrite: ["/tmp"] },
      landlock: { compatibility: "hard_requirement" },
    }),
    version: 1,
    hash: "test",
    source: sandboxv1.PolicySource.SANDBOX,
    origin: "gateway",
  });
  return state;
}

function confiner(launcherPath: string, policyState: PolicyState): ChildConfiner {
  return new ChildConfiner({
    launcherPath,
    policyState,
    user: { name: "nobody", uid: 65534, gid: 65534, home: "/", shell: "/bin/sh" },
    workdir: dir,
    logger: pino({ level: "silent" }),
  });
}

describe("ChildConfiner.probe", () => {
  it("names a missing launcher, with or without a policy", async () => {
    const missing = join(dir, "nope");
    expect(launcherProblem(missing)).toMatch(/^the confinement launcher .*nope is not executable \(ENOENT\)/);
    expect(await confiner(missing, new PolicyState()).probe()).toBe(launcherProblem(missing));
    expect(await confiner(missing, installed()).probe()).toBe(launcherProblem(missing));
  });

  it("gives the launcher's reason when --check fails for the installed policy", async () => {
    const failing = launcher(
      "failing",
      'echo "openshell-launch: Landlock is required (hard_requirement) but the kernel does not support it" >&2; exit 1',
    );
    expect(await confiner(failing, installed()).probe()).toBe(
      "openshell-launch: Landlock is required (hard_requirement) but the kernel does not support it",
    );
    // Without a policy nothing can be checked yet: only the launcher is looked at.
    expect(await confiner(failing, new PolicyState()).probe()).toBeUndefined();
  });

  it("passes when --check succeeds", async () => {
    const seen = join(dir, "args");
    const ok = launcher("ok", `echo "$@" > ${seen}; exit 0`);
    expect(await confiner(ok, installed()).probe()).toBeUndefined();
  });
});
