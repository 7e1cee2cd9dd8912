import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import type { OpenShellClient } from "@openshell/bootstrap";
import {
  SandboxPhase,
  SandboxSchema,
  type SandboxStreamEvent,
  SandboxStreamEventSchema,
} from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { Output } from "../ui/output.js";
import { waitForReady } from "./wait-for-ready.js";

const sandbox = (phase: SandboxPhase) => create(SandboxSchema, { id: "id-1", name: "kube", phase });
const event = (reason: string, timestampMs: number): SandboxStreamEvent =>
  create(SandboxStreamEventSchema, {
    payload: {
      case: "event",
      value: { reason, message: reason.toLowerCase(), timestampMs: BigInt(timestampMs) },
    },
  });

/** A client whose WatchSandbox replays `events` (what the gateway's event tail sends first). */
function clientReplaying(events: SandboxStreamEvent[]): OpenShellClient {
  return {
    async *watchSandbox() {
      yield* events;
    },
  } as unknown as OpenShellClient;
}

async function stepsShown(events: SandboxStreamEvent[], eventsSinceMs?: number): Promise<string> {
  const stderr = new PassThrough();
  let shown = "";
  stderr.on("data", (chunk: Buffer) => (shown += chunk.toString()));
  await waitForReady({
    client: clientReplaying(events),
    sandbox: sandbox(SandboxPhase.PROVISIONING),
    output: new Output({ stdout: new PassThrough(), stderr, env: {} }),
    timeoutMs: 10_000,
    verbose: false,
    ...(eventsSinceMs !== undefined ? { eventsSinceMs } : {}),
  });
  return shown;
}

describe("waitForReady", () => {
  const ready = create(SandboxStreamEventSchema, {
    payload: { case: "sandbox", value: sandbox(SandboxPhase.READY) },
  });

  it("shows the platform events it is sent, then that the sandbox is ready", async () => {
    const shown = await stepsShown([event("Scheduled", 1_000), event("Started", 2_000), ready]);
    expect(shown).toContain("Scheduled: scheduled");
    expect(shown).toContain("Started: started");
    expect(shown).toContain("Sandbox 'kube' is ready");
  });

  it("with eventsSinceMs, leaves out events stamped before it (an earlier run's)", async () => {
    const shown = await stepsShown([event("Killing", 1_000), event("Scheduled", 5_000), ready], 4_000);
    expect(shown).not.toContain("Killing");
    expect(shown).toContain("Scheduled: scheduled");
  });
});
