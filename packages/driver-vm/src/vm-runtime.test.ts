import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pinVmRuntime } from "./vm-runtime.js";

/** A staged runtime as stage-vm-runtime.sh lays it out (tiny stand-in files), made `current`. */
function stage(root: string, key: string): void {
  const dir = join(root, key);
  mkdirSync(dir, { recursive: true });
  for (const name of ["vmlinux", "vmlinuz", "initrd.img", "rootfs.qcow2"])
    writeFileSync(join(dir, name), `${name} ${key}`);
  writeFileSync(join(dir, "manifest.json"), JSON.stringify({ key }));
  rmSync(join(root, "current"), { force: true });
  symlinkSync(key, join(root, "current"));
}

describe("pinVmRuntime", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "osvm-pin-"));
    dirs.push(dir);
    return dir;
  };

  it("boots from its own links, so a pruned staged runtime leaves the driver's kernel in place", () => {
    const root = tempDir();
    const state = tempDir();
    stage(root, "aaaaaaaaaaaaaaaa");
    const pinned = pinVmRuntime(root, state);
    expect(pinned.dir).toBe(join(state, "runtime", "aaaaaaaaaaaaaaaa"));
    expect(pinned.kernel).toBe(join(pinned.dir, "vmlinux"));
    // Hard links: the same file, no copy.
    expect(statSync(pinned.kernel).ino).toBe(statSync(join(root, "aaaaaaaaaaaaaaaa", "vmlinux")).ino);

    // Another clone stages a new runtime and prunes the one this driver loaded.
    stage(root, "bbbbbbbbbbbbbbbb");
    rmSync(join(root, "aaaaaaaaaaaaaaaa"), { recursive: true });
    for (const file of [pinned.kernel, pinned.initrd, pinned.baseDisk])
      expect(readFileSync(file, "utf8")).toContain("aaaaaaaaaaaaaaaa");

    // The next driver start pins the new runtime and drops the old pin.
    const next = pinVmRuntime(root, state);
    expect(next.dir).toBe(join(state, "runtime", "bbbbbbbbbbbbbbbb"));
    expect(readdirSync(join(state, "runtime"))).toEqual(["bbbbbbbbbbbbbbbb"]);
    expect(readFileSync(next.initrd, "utf8")).toBe("initrd.img bbbbbbbbbbbbbbbb");
  });

  it("an unstaged root is still the error that names the staging command", () => {
    expect(() => pinVmRuntime(join(tempDir(), "none"), tempDir())).toThrow(
      /bash \/\S*packages\/driver-vm\/runtime\/stage-vm-runtime\.sh/,
    );
  });
});
