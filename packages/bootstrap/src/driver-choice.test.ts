import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { afterAll, describe, expect, it } from "vitest";
import type { BootstrapProgress } from "./bootstrap-inputs.js";
import { chooseDriver, type DriverProbes } from "./driver-choice.js";

const quiet: BootstrapProgress = {
  progress: () => ({ update: () => {}, done: () => {} }),
  note: () => {},
  warn: () => {},
};
const runtime = mkdtempSync(join(tmpdir(), "osdrv-choice-"));
afterAll(() => rmSync(runtime, { recursive: true, force: true }));

const env = { DOCKER_HOST: "unix:///run/example/docker.sock" };
const staged: DriverProbes["stageVmRuntime"] = async () => runtime;
const cannotStage: DriverProbes["stageVmRuntime"] = async () => {
  throw new OpenShellError(
    "failed_precondition",
    "cannot stage the VM runtime of this version (stage-vm-runtime.sh):\nerror: needs root",
  );
};
const dockerUp = async () => {};
const dockerDown = async () => {
  throw new OpenShellError(
    "unavailable",
    "Docker is not running: no socket at /run/example/docker.sock.\nhint",
  );
};
const kvmBoots = async (kernel: string) => ({ accelerator: "kvm", reason: `booted ${kernel}` });
const tcgOnly = async () => ({ accelerator: "tcg", reason: "KVM_CREATE_VM failed" });

describe("gateway start --driver auto", () => {
  it("picks the VM driver when KVM boots a guest of the staged runtime, even with Docker up", async () => {
    const choice = await chooseDriver(quiet, env, {
      kvm: kvmBoots,
      stageVmRuntime: staged,
      dockerAnswers: dockerUp,
    });
    expect(choice).toEqual({
      driver: "vm",
      reason: `auto: KVM boots a guest (booted ${join(runtime, "vmlinuz")})`,
    });
  });

  it("picks Docker when KVM boots no guest and a daemon answers", async () => {
    const choice = await chooseDriver(quiet, env, {
      kvm: tcgOnly,
      stageVmRuntime: staged,
      dockerAnswers: dockerUp,
    });
    expect(choice.driver).toBe("docker");
    expect(choice.reason).toBe(
      "auto: no KVM that boots a guest (KVM_CREATE_VM failed); Docker at unix:///run/example/docker.sock answers",
    );
  });

  it("picks Docker when the VM runtime cannot be staged here, saying why, instead of failing", async () => {
    const choice = await chooseDriver(quiet, env, {
      kvm: kvmBoots,
      stageVmRuntime: cannotStage,
      dockerAnswers: dockerUp,
    });
    expect(choice.driver).toBe("docker");
    expect(choice.reason).toContain(
      "the VM runtime cannot be staged here: cannot stage the VM runtime of this version (stage-vm-runtime.sh):",
    );
  });

  it("falls back to microVMs under TCG with both reasons when there is no Docker either", async () => {
    const choice = await chooseDriver(quiet, env, {
      kvm: tcgOnly,
      stageVmRuntime: staged,
      dockerAnswers: dockerDown,
    });
    expect(choice).toEqual({
      driver: "vm",
      reason:
        "auto: no KVM that boots a guest (KVM_CREATE_VM failed) and no Docker (Docker is not running: no socket at /run/example/docker.sock.): microVMs under TCG",
    });
  });

  it("without the VM driver's probe, Docker when it answers", async () => {
    const choice = await chooseDriver(quiet, env, { stageVmRuntime: staged, dockerAnswers: dockerUp });
    expect(choice.driver).toBe("docker");
    expect(choice.reason).toContain("no KVM probe available");
  });
});
