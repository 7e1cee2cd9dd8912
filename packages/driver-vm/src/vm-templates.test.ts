import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MemorySnapshot, SNAPSHOT_FORMAT, type SnapshotFingerprint } from "./memory-snapshot.js";
import { VmTemplates } from "./vm-templates.js";

const fingerprint: SnapshotFingerprint = {
  format: SNAPSHOT_FORMAT,
  runtimeKey: "0123456789abcdef",
  qemuVersion: "QEMU emulator version 7.2.22",
  accelerator: "tcg",
  memMib: 512,
  vcpus: 2,
  freePageReporting: true,
};

describe("VmTemplates", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const root = () => {
    const dir = mkdtempSync(join(tmpdir(), "tpl-"));
    dirs.push(dir);
    return dir;
  };
  /** A template directory as a build leaves it (snapshot optional). */
  const makeTemplate = async (dir: string, withSnapshot: boolean) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "disk.qcow2"), "disk");
    writeFileSync(join(dir, "backing"), "/state/images/base.qcow2");
    if (!withSnapshot) return;
    const snapshot = new MemorySnapshot(dir);
    writeFileSync(snapshot.file, "memory");
    await snapshot.commit(fingerprint, "template", 1);
  };

  it("keys by shape; the newest complete template of a key is current", async () => {
    const key = VmTemplates.key(fingerprint, { diskBytes: 1 });
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(VmTemplates.key(fingerprint, { diskBytes: 1 })).toBe(key);
    expect(VmTemplates.key({ ...fingerprint, memMib: 1024 }, { diskBytes: 1 })).not.toBe(key);
    const dir = root();
    const templates = new VmTemplates(dir);
    expect(templates.current(key, fingerprint)).toBeUndefined();
    await makeTemplate(join(dir, `${key}-100`), true);
    await makeTemplate(join(dir, `${key}-200`), true);
    await makeTemplate(join(dir, `${key}-300`), false); // a build that failed or runs
    expect(templates.current(key, fingerprint)?.dir).toBe(join(dir, `${key}-200`));
    // Another runtime's driver does not take it.
    expect(templates.current(key, { ...fingerprint, runtimeKey: "fedcba9876543210" })).toBeUndefined();
  });

  it("prunes what is neither current nor a sandbox's backing, and reports the kept ones' base images", async () => {
    const dir = root();
    const templates = new VmTemplates(dir);
    for (const name of ["a-1", "a-2", "b-1"]) await makeTemplate(join(dir, name), true);
    const kept = templates.prune(new Set([join(dir, "a-1", "disk.qcow2")]), new Set([join(dir, "b-1")]));
    expect(existsSync(join(dir, "a-1"))).toBe(true);
    expect(existsSync(join(dir, "a-2"))).toBe(false);
    expect(existsSync(join(dir, "b-1"))).toBe(true);
    expect([...kept]).toEqual(["/state/images/base.qcow2"]);
  });

  it("builds one template per key at a time; a failed build leaves no snapshot", async () => {
    const dir = root();
    const templates = new VmTemplates(dir);
    const errors: unknown[] = [];
    let builds = 0;
    const make = async (target: string) => {
      builds++;
      await makeTemplate(target, true);
      throw new Error("boom");
    };
    templates.build("k", make, (error) => errors.push(error));
    templates.build("k", make, (error) => errors.push(error));
    expect(templates.isBuilding("k")).toBe(true);
    await templates.settled();
    expect(builds).toBe(1);
    expect(errors).toHaveLength(1);
    expect(templates.isBuilding("k")).toBe(false);
    expect(templates.current("k", fingerprint)).toBeUndefined();
  });
});
