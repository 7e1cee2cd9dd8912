import { create } from "@bufbuild/protobuf";
import { createLogger } from "@openshell/core";
import { SandboxPhase, SandboxSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { SandboxEventHub } from "../events/sandbox-event-hub.js";
import { SandboxRecords } from "../sandboxes/sandbox-records.js";
import { SqliteStore } from "../store/sqlite-store.js";
import { ComputeRuntime } from "./compute-runtime.js";
import type { DriverProcess } from "./driver-process.js";

describe("ComputeRuntime.demoteStaleReady", () => {
  it("demotes every stored READY sandbox without a live session, across pages, and nothing else", async () => {
    const store = SqliteStore.open(":memory:");
    const records = new SandboxRecords(store);
    const phases: Record<string, SandboxPhase> = {};
    for (let i = 0; i < 520; i++) phases[`ready-${i}`] = SandboxPhase.READY;
    phases.live = SandboxPhase.READY;
    phases.failed = SandboxPhase.ERROR;
    phases.deleting = SandboxPhase.DELETING;
    let createdAt = 1;
    for (const [name, phase] of Object.entries(phases)) {
      await records.insert(create(SandboxSchema, { id: name, name, phase, spec: {} }), createdAt++);
    }
    const runtime = new ComputeRuntime({
      // demoteStaleReady only reads the store; it never calls the driver.
      driver: {} as DriverProcess,
      records,
      hub: new SandboxEventHub(),
      hasSession: (id) => id === "live",
      issueSupervisorToken: () => "",
      logger: createLogger({ name: "test", level: "silent" }),
      reconcileIntervalMs: 60_000,
      orphanGraceMs: 300_000,
      watchRetryMs: 2_000,
    });

    await runtime.demoteStaleReady();

    const after = await records.list({ limit: 1000, offset: 0 });
    const phaseOf = (name: string) => after.find((s) => s.name === name)?.phase;
    expect(
      after.filter((s) => s.name.startsWith("ready-")).every((s) => s.phase === SandboxPhase.PROVISIONING),
    ).toBe(true);
    expect(phaseOf("ready-519")).toBe(SandboxPhase.PROVISIONING);
    expect(phaseOf("live")).toBe(SandboxPhase.READY);
    expect(phaseOf("failed")).toBe(SandboxPhase.ERROR);
    expect(phaseOf("deleting")).toBe(SandboxPhase.DELETING);
    await store.close();
  });
});
