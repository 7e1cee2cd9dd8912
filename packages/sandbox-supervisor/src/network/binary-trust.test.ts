import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BinaryTrustCache } from "./binary-trust.js";

/** A /proc look-alike: `<root>/<pid>/exe` links to the binary, as the kernel's link does. */
describe("BinaryTrustCache", () => {
  let dir: string;
  let procRoot: string;
  let binary: string;
  const PID = 4242;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "binary-trust-"));
    procRoot = join(dir, "proc");
    mkdirSync(join(procRoot, String(PID)), { recursive: true });
    binary = join(dir, "agent");
    writeFileSync(binary, "first content");
    symlinkSync(binary, join(procRoot, String(PID), "exe"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("trusts the first use and later uses of the same content", async () => {
    const trust = new BinaryTrustCache();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
  });

  it("the first use does not wait for the hash (a 512 MiB binary is hashed in the background)", async () => {
    const trust = new BinaryTrustCache();
    truncateSync(binary, 512 * 2 ** 20);
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    const pending = trust.firstUseHash("/usr/bin/agent");
    const first = await Promise.race([pending, new Promise((resolve) => setImmediate(resolve, "pending"))]);
    expect(first).toBe("pending");
    expect(await pending).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a binary written in place after its first use, naming both hashes", async () => {
    const trust = new BinaryTrustCache();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    await trust.firstUseHash("/usr/bin/agent");
    writeFileSync(binary, "other content");
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toMatch(
      /^binary '\/usr\/bin\/agent' changed since first use \(sha256 [0-9a-f]{12} -> [0-9a-f]{12}\)$/,
    );
  });

  it("refuses a binary replaced by another file under the same name", async () => {
    const trust = new BinaryTrustCache();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    await trust.firstUseHash("/usr/bin/agent");
    writeFileSync(join(dir, "new"), "replacement");
    renameSync(join(dir, "new"), binary);
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toMatch(/changed since first use/);
  });

  it("keeps trusting the same content under a new inode (a reinstall)", async () => {
    const trust = new BinaryTrustCache();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    expect(await trust.firstUseHash("/usr/bin/agent")).toMatch(/^[0-9a-f]{64}$/);
    copyFileSync(binary, join(dir, "copy"));
    renameSync(join(dir, "copy"), binary);
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
  });

  it("a file changed while its first-use hash is computed is refused afterwards", async () => {
    const trust = new BinaryTrustCache();
    writeFileSync(binary, Buffer.alloc(64 * 2 ** 20, 1));
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    // Whether the background hash has finished or not, the change must not be trusted.
    writeFileSync(binary, "changed", { flag: "a" });
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toMatch(/changed since first use/);
  });

  it("each path has its own first use", async () => {
    const trust = new BinaryTrustCache();
    expect(await trust.check(PID, "/usr/bin/agent", procRoot)).toBeUndefined();
    writeFileSync(binary, "other content");
    expect(await trust.check(PID, "/usr/bin/other", procRoot)).toBeUndefined();
  });

  it("a process that is gone is not trusted", async () => {
    const trust = new BinaryTrustCache();
    expect(await trust.check(99999, "/usr/bin/agent", procRoot)).toMatch(
      /^cannot read the binary of pid 99999: /,
    );
  });
});
