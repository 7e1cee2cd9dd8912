import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NOBODY_UID, type SshFixture, startFixture } from "@openshell/sandbox-supervisor/test/ssh-harness";
import { afterEach, describe, expect, it } from "vitest";
import { downloadFromSandbox, uploadToSandbox } from "../src/files/sandbox-transfer.js";
import { hashTree } from "../src/files/test-fixtures.js";
import { sshRemoteRunner } from "../src/ssh/sandbox-ssh.js";

const PROXY_SCRIPT = new URL(
  "ssh-unix-proxy.mjs",
  import.meta.resolve("@openshell/sandbox-supervisor/test/ssh-harness"),
).pathname;

/**
 * The CLI's transfer runner (real OpenSSH) against the supervisor's real SSH server, for a sandbox
 * user whose startup files write to stdout: a login shell would put that text in front of the tar
 * stream and run whatever the user planted. Transfers must run without it.
 */
describe("upload and download through the supervisor's SSH server", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function hostileHomeFixture(): Promise<{ fixture: SshFixture; home: string; local: string }> {
    const home = mkdtempSync(join(tmpdir(), "openshell-home-"));
    const local = mkdtempSync(join(tmpdir(), "openshell-local-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    cleanups.push(() => rmSync(local, { recursive: true, force: true }));
    chmodSync(home, 0o755);
    chownSync(home, NOBODY_UID, NOBODY_UID);
    for (const file of [".bash_profile", ".profile", ".bashrc"]) {
      writeFileSync(join(home, file), `echo "noise from ${file}"\necho ${file} >> "${home}/ran"\n`);
    }
    const fixture = await startFixture({ env: { OPENSHELL_SANDBOX_NAME: "test-box", HOME: home } });
    cleanups.push(async () => {
      await fixture.server.close();
      rmSync(fixture.root, { recursive: true, force: true });
    });
    return { fixture, home, local };
  }

  it("runs the remote side without the user's login shell", async () => {
    const { fixture, home, local } = await hostileHomeFixture();
    const runRemote = sshRemoteRunner(`'${process.execPath}' '${PROXY_SCRIPT}' '${fixture.socketPath}'`);
    const source = join(local, "source");
    mkdirSync(join(source, "nested"), { recursive: true });
    writeFileSync(join(source, "a.txt"), "alpha");
    writeFileSync(join(source, "nested", "b.bin"), Buffer.alloc(100_000, 3));

    const uploaded = await uploadToSandbox({
      localPath: source,
      dest: join(fixture.workdir, "up"),
      gitIgnore: false,
      runRemote,
    });
    expect(uploaded.files).toBe(2);
    const back = join(local, "back");
    await downloadFromSandbox({ sandboxPath: join(fixture.workdir, "up"), dest: back, runRemote });

    expect(await hashTree(back)).toEqual(await hashTree(source));
    expect(existsSync(join(home, "ran")) ? readFileSync(join(home, "ran"), "utf8") : "").toBe("");
  });
});
