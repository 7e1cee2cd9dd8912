import type { GatewayMessage } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { type LiveSession, RelayLimits, SupervisorSessionRegistry } from "./supervisor-session-registry.js";

function fakeSession(sessionId: string) {
  const sent: GatewayMessage[] = [];
  let open = true;
  const session: LiveSession & { sent: GatewayMessage[]; isOpen: () => boolean } = {
    sessionId,
    instanceId: `instance-${sessionId}`,
    connectedAt: new Date(),
    send: (message) => {
      if (!open) return false;
      sent.push(message);
      return true;
    },
    shutdown: () => {
      open = false;
    },
    sent,
    isOpen: () => open,
  };
  return session;
}

const channelIds = (session: { sent: GatewayMessage[] }) =>
  session.sent.flatMap((m) => (m.payload.case === "relayOpen" ? [m.payload.value.channelId] : []));

describe("SupervisorSessionRegistry", () => {
  it("tells listeners when a sandbox's session is superseded, ends or is dropped, not for a stale removal", () => {
    const registry = new SupervisorSessionRegistry();
    const changes: string[] = [];
    const unsubscribe = registry.onSessionChange((sandboxId) => changes.push(sandboxId));
    registry.register("sb", fakeSession("s1"));
    expect(changes).toEqual([]);
    registry.register("sb", fakeSession("s2"));
    expect(changes).toEqual(["sb"]);
    registry.removeIfCurrent("sb", "s1");
    expect(changes).toEqual(["sb"]);
    registry.removeIfCurrent("sb", "s2");
    expect(changes).toEqual(["sb", "sb"]);
    registry.register("other", fakeSession("s3"));
    registry.cleanupSandbox("other");
    expect(changes).toEqual(["sb", "sb", "other"]);
    registry.register("last", fakeSession("s4"));
    registry.shutdownAll();
    expect(changes).toEqual(["sb", "sb", "other", "last"]);
    unsubscribe();
    registry.register("sb", fakeSession("s5"));
    registry.register("sb", fakeSession("s6"));
    expect(changes).toHaveLength(4);
  });

  it("supersedes a session, shuts the old one down, and removes only the current one", () => {
    const registry = new SupervisorSessionRegistry();
    const first = fakeSession("s1");
    const second = fakeSession("s2");
    expect(registry.register("sb", first)).toBeUndefined();
    expect(registry.register("sb", second)).toBe(first);
    expect(first.isOpen()).toBe(false);
    expect(registry.removeIfCurrent("sb", "s1")).toBe("superseded");
    expect(registry.get("sb")).toBe(second);
    expect(registry.removeIfCurrent("sb", "s2")).toBe("removed");
    expect(registry.has("sb")).toBe(false);
  });

  it("tells a session that ended because the gateway shut down from a superseded one", () => {
    const registry = new SupervisorSessionRegistry();
    registry.register("sb", fakeSession("s1"));
    registry.shutdownAll();
    expect(registry.removeIfCurrent("sb", "s1")).toBe("gateway-shutdown");
  });

  it("waits for a session with backoff and fails UNAVAILABLE after the timeout", async () => {
    const registry = new SupervisorSessionRegistry();
    await expect(registry.waitForSession("sb", 250)).rejects.toThrow("supervisor session not connected");
    setTimeout(() => registry.register("sb", fakeSession("late")), 150);
    await expect(registry.waitForSession("sb", 5_000)).resolves.toMatchObject({ sessionId: "late" });
  });

  it("sends RelayOpen, hands the claim to the requester, and joins both ends", async () => {
    const registry = new SupervisorSessionRegistry();
    const session = fakeSession("s1");
    registry.register("sb", session);
    const opened = await registry.openRelay("sb", 1000);
    expect(channelIds(session)).toEqual([opened.channelId]);
    const supervisorEnd = registry.claimRelay(opened.channelId, "sb");
    const requesterEnd = await registry.awaitClaim(opened);
    supervisorEnd.write("ping");
    const [chunk] = (await Promise.all([new Promise((r) => requesterEnd.once("data", r))])) as Buffer[];
    expect(chunk?.toString()).toBe("ping");
    expect(registry.pendingRelayCount).toBe(0);
    expect(() => registry.claimRelay(opened.channelId, "sb")).toThrow("unknown or expired relay channel");
  });

  it("does not let another sandbox's supervisor claim a relay", async () => {
    const registry = new SupervisorSessionRegistry();
    registry.register("sb", fakeSession("s1"));
    const opened = await registry.openRelay("sb", 1000);
    expect(() => registry.claimRelay(opened.channelId, "other")).toThrow(
      "relay channel belongs to another sandbox",
    );
    // The rightful supervisor can still claim it.
    expect(registry.claimRelay(opened.channelId, "sb")).toBeDefined();
  });

  it("holds the per-sandbox and global caps under 100 concurrent opens", async () => {
    const registry = new SupervisorSessionRegistry();
    registry.register("sb", fakeSession("s1"));
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => registry.openRelay("sb", 1000)),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
    expect(ok).toHaveLength(RelayLimits.maxPendingPerSandbox);
    expect(new Set(refused)).toEqual(new Set(["per-sandbox relay limit reached (32 in flight for sb)"]));

    const global = new SupervisorSessionRegistry();
    for (let i = 0; i < 9; i++) global.register(`sb${i}`, fakeSession(`s${i}`));
    const all = await Promise.allSettled(
      Array.from({ length: 9 * 32 }, (_, i) => global.openRelay(`sb${i % 9}`, 1000)),
    );
    const globalRefused = all.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
    expect(global.pendingRelayCount).toBe(RelayLimits.maxPending);
    expect(globalRefused).toHaveLength(9 * 32 - 256);
    expect(new Set(globalRefused)).toEqual(new Set(["gateway relay capacity reached (256 in flight)"]));
  });

  it("times out claims, reaps expired relays, and fails a claim after the requester gave up", async () => {
    let now = 1_000_000;
    const registry = new SupervisorSessionRegistry(() => now);
    registry.register("sb", fakeSession("s1"));
    const late = await registry.openRelay("sb", 1000);
    now += RelayLimits.pendingTimeoutMs + 1;
    expect(() => registry.claimRelay(late.channelId, "sb")).toThrow("relay channel timed out");

    await registry.openRelay("sb", 1000);
    now += RelayLimits.pendingTimeoutMs + 1;
    expect(registry.reapExpiredRelays()).toBe(1);
    expect(registry.pendingRelayCount).toBe(0);

    const abandoned = await registry.openRelay("sb", 1000);
    await expect(registry.awaitClaim(abandoned, 20)).rejects.toThrow("relay open timed out");
    expect(() => registry.claimRelay(abandoned.channelId, "sb")).toThrow("unknown or expired relay channel");
  });

  it("replays pending relays to a superseding session", async () => {
    const registry = new SupervisorSessionRegistry();
    const old = fakeSession("old");
    registry.register("sb", old);
    const a = await registry.openRelay("sb", 1000);
    const b = await registry.openRelay("sb", 1000);
    const successor = fakeSession("new");
    registry.register("sb", successor);
    expect(registry.replayPendingRelays("sb", successor)).toBe(2);
    expect(channelIds(successor).sort()).toEqual([a.channelId, b.channelId].sort());
  });

  it("fails UNAVAILABLE when the session cannot take RelayOpen", async () => {
    const registry = new SupervisorSessionRegistry();
    const session = fakeSession("s1");
    registry.register("sb", session);
    session.shutdown();
    await expect(registry.openRelay("sb", 1000)).rejects.toThrow("supervisor session disconnected");
    expect(registry.pendingRelayCount).toBe(0);
  });
});

describe("relay duplex teardown", () => {
  it("destroys the requester end when the supervisor end dies mid-stream, but not after a clean end", async () => {
    const registry = new SupervisorSessionRegistry();
    registry.register("sb", fakeSession("s1"));
    const abrupt = await registry.openRelay("sb", 1000);
    const abruptSupervisor = registry.claimRelay(abrupt.channelId, "sb");
    const abruptRequester = await registry.awaitClaim(abrupt);
    abruptSupervisor.destroy();
    await new Promise((resolve) => abruptRequester.once("close", resolve));

    const clean = await registry.openRelay("sb", 1000);
    const cleanSupervisor = registry.claimRelay(clean.channelId, "sb");
    const cleanRequester = await registry.awaitClaim(clean);
    cleanSupervisor.end("last words");
    cleanSupervisor.destroy();
    let received = "";
    for await (const chunk of cleanRequester) received += chunk;
    expect(received).toBe("last words");
  });
});
