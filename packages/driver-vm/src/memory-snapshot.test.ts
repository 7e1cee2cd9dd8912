import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MemorySnapshot, SNAPSHOT_FORMAT, type SnapshotFingerprint } from "./memory-snapshot.js";

const fingerprint: SnapshotFingerprint = {
  format: SNAPSHOT_FORMAT,
  runtimeKey: "0123456789abcdef",
  qemuVersion: "QEMU emulator version 7.2.22",
  accelerator: "tcg",
  memMib: 512,
  vcpus: 2,
  freePageReporting: true,
};

describe("MemorySnapshot", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const made = async () => {
    const dir = mkdtempSync(join(tmpdir(), "snap-"));
    dirs.push(dir);
    const snapshot = new MemorySnapshot(dir);
    writeFileSync(snapshot.file, Buffer.alloc(4096, 7), { mode: 0o600 });
    const meta = await snapshot.commit(fingerprint, "stop", 12);
    return { snapshot, meta };
  };

  it("records size and SHA-256 privately; a matching VM may restore it and its content verifies", async () => {
    const { snapshot, meta } = await made();
    expect(meta).toMatchObject({ bytes: 4096, cause: "stop", saveMs: 12, fingerprint });
    expect(statSync(snapshot.metaFile).mode & 0o777).toBe(0o600);
    const check = snapshot.check(fingerprint);
    expect(check.usable).toBe(true);
    expect(await snapshot.verify(meta)).toBe(true);
  });

  it("refuses another runtime, QEMU, size or device set, naming what differs", async () => {
    const { snapshot } = await made();
    expect(snapshot.check({ ...fingerprint, runtimeKey: "fedcba9876543210" })).toEqual({
      usable: false,
      reason: 'it was made with runtimeKey "0123456789abcdef" and this driver runs "fedcba9876543210"',
    });
    expect(snapshot.check({ ...fingerprint, memMib: 1024 })).toMatchObject({ usable: false });
    expect(snapshot.check({ ...fingerprint, freePageReporting: false })).toMatchObject({ usable: false });
    expect(snapshot.check({ ...fingerprint, qemuVersion: "QEMU emulator version 8.2.0" })).toMatchObject({
      usable: false,
    });
  });

  it("refuses a truncated file and detects a changed byte; without its record it is unusable", async () => {
    const { snapshot, meta } = await made();
    writeFileSync(snapshot.file, Buffer.alloc(4096, 8));
    expect(snapshot.check(fingerprint).usable).toBe(true);
    expect(await snapshot.verify(meta)).toBe(false);
    truncateSync(snapshot.file, 100);
    expect(snapshot.check(fingerprint)).toMatchObject({
      usable: false,
      reason: expect.stringContaining("100 bytes"),
    });
    rmSync(snapshot.metaFile);
    expect(snapshot.check(fingerprint)).toMatchObject({
      usable: false,
      reason: expect.stringContaining("snapshot.json"),
    });
    expect(snapshot.exists()).toBe(true);
    snapshot.remove();
    expect(snapshot.exists()).toBe(false);
  });
});
