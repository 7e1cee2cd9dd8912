import { spawn } from "node:child_process";
import { chmod, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  downloadFromSandbox,
  type RemoteCommandRunner,
  remoteDownloadCommand,
  uploadToSandbox,
} from "./sandbox-transfer.js";
import { endOfArchive, tarEntry } from "./tar-fixtures.js";
import { git, hasGit, hashTree, tempDirs, writeTree } from "./test-fixtures.js";

/**
 * Stands in for `ssh ... sandbox <command>`: runs the remote command in a local shell, so the
 * "sandbox" is just another temp dir. The real ssh path is covered by the CLI e2e tests.
 */
const localShellRunner: RemoteCommandRunner = (command) => spawn("sh", ["-c", command], { stdio: "pipe" });

/** A runner whose `tar` is a stub that complains and fails, like a broken tar in the sandbox. */
async function failingTarRunner(binDir: string): Promise<RemoteCommandRunner> {
  const fakeTar = path.join(binDir, "tar");
  await writeFile(fakeTar, "#!/bin/sh\necho 'tar: simulated: No space left on device' >&2\nexit 2\n");
  await chmod(fakeTar, 0o755);
  return (command) =>
    spawn("sh", ["-c", command], {
      stdio: "pipe",
      env: { ...process.env, PATH: `${binDir}:${process.env.PATH}` },
    });
}

const SAMPLE_TREE = {
  "README.md": "# hello\n",
  "with space.txt": "spaces",
  "src/nested/deep file.ts": "export const x = 1;\n",
  "src/index.ts": "console.log('hi');\n",
  "-dash.txt": "leading dash",
  "line\nbreak.txt": "newline in the name",
  "quote's.txt": "quote",
  "bin.dat": Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256)),
};

describe("uploadToSandbox", () => {
  const temp = tempDirs();
  afterEach(() => temp.cleanup());

  it("round-trips a directory byte for byte into a dest it creates", async () => {
    const local = await temp.make();
    const sandbox = await temp.make();
    await writeTree(local, SAMPLE_TREE);
    await symlink("src/index.ts", path.join(local, "link"));
    const dest = path.join(sandbox, "new dir/sub");

    const summary = await uploadToSandbox({
      localPath: local,
      dest,
      gitIgnore: true,
      runRemote: localShellRunner,
    });

    expect(await hashTree(dest)).toEqual(await hashTree(local));
    expect(await hashTree(dest)).toHaveProperty("link", "-> src/index.ts");
    const expectedBytes = Object.values(SAMPLE_TREE).reduce(
      (total, content) => total + Buffer.byteLength(content),
      0,
    );
    expect(summary).toEqual({ files: Object.keys(SAMPLE_TREE).length + 1, bytes: expectedBytes });
  });

  it.skipIf(!hasGit())("honours .gitignore in a git repository and never sends .git", async () => {
    const repo = await temp.make();
    const sandbox = await temp.make();
    git(repo, "init", "-q");
    await writeTree(repo, {
      ".gitignore": "secret.env\nnode_modules/\n",
      "tracked.txt": "tracked",
      "secret.env": "TOKEN=1",
      "node_modules/pkg/index.js": "module.exports = 1;",
      "notes/untracked.md": "not ignored",
    });
    git(repo, "add", ".gitignore", "tracked.txt");
    git(repo, "commit", "-q", "-m", "init");

    await uploadToSandbox({ localPath: repo, dest: sandbox, gitIgnore: true, runRemote: localShellRunner });

    expect(Object.keys(await hashTree(sandbox)).sort()).toEqual([
      ".gitignore",
      "notes/untracked.md",
      "tracked.txt",
    ]);
  });

  it("honours .gitignore files, nested ones too, outside git", async () => {
    const local = await temp.make();
    const sandbox = await temp.make();
    await writeTree(local, {
      ".gitignore": "*.log\ndist/\n",
      "app.log": "",
      "dist/bundle.js": "",
      "src/main.ts": "main",
      "src/.gitignore": "generated/\n!keep.log\n",
      "src/generated/types.ts": "",
      "src/keep.log": "kept by the nested negation",
      "src/drop.log": "",
    });

    const summary = await uploadToSandbox({
      localPath: local,
      dest: sandbox,
      gitIgnore: true,
      runRemote: localShellRunner,
    });

    expect(Object.keys(await hashTree(sandbox)).sort()).toEqual([
      ".gitignore",
      "src/.gitignore",
      "src/keep.log",
      "src/main.ts",
    ]);
    expect(summary.files).toBe(4);
  });

  it.skipIf(!hasGit())("sends everything but .git with gitIgnore: false", async () => {
    const repo = await temp.make();
    const sandbox = await temp.make();
    git(repo, "init", "-q");
    await writeTree(repo, { ".gitignore": "*.log\n", "a.log": "log", "b.txt": "b" });

    await uploadToSandbox({ localPath: repo, dest: sandbox, gitIgnore: false, runRemote: localShellRunner });

    expect(Object.keys(await hashTree(sandbox)).sort()).toEqual([".gitignore", "a.log", "b.txt"]);
  });

  it.skipIf(!hasGit())("uploads only the named file from inside a git repository", async () => {
    const repo = await temp.make();
    const sandbox = await temp.make();
    git(repo, "init", "-q");
    await writeTree(repo, { "docs/guide.md": "guide text", "docs/other.md": "", "top.txt": "" });

    const summary = await uploadToSandbox({
      localPath: path.join(repo, "docs/guide.md"),
      dest: path.join(sandbox, "target"),
      gitIgnore: true,
      runRemote: localShellRunner,
    });

    expect(await hashTree(sandbox)).toEqual({ "target/guide.md": expect.any(String) });
    expect(await readFile(path.join(sandbox, "target/guide.md"), "utf8")).toBe("guide text");
    expect(summary).toEqual({ files: 1, bytes: 10 });
  });

  it("fails with not_found for a missing local path", async () => {
    const root = await temp.make();
    const missing = path.join(root, "missing");
    await expect(
      uploadToSandbox({ localPath: missing, dest: root, gitIgnore: true, runRemote: localShellRunner }),
    ).rejects.toMatchObject({
      name: "OpenShellError",
      code: "not_found",
      message: `local path '${missing}' does not exist`,
    });
  });

  it("surfaces the remote stderr and exit code when the remote side fails", async () => {
    const local = await temp.make();
    const sandbox = await temp.make();
    await writeTree(local, { "a.txt": "a" });
    await writeFile(path.join(sandbox, "not-a-dir"), "");

    const upload = uploadToSandbox({
      localPath: local,
      dest: path.join(sandbox, "not-a-dir/sub"),
      gitIgnore: true,
      runRemote: localShellRunner,
    });

    await expect(upload).rejects.toMatchObject({ name: "OpenShellError", code: "internal" });
    await expect(upload).rejects.toThrow(/remote command ended with exit code 1:\n.*mkdir.*Not a directory/);
  });

  it("surfaces a failing remote tar's stderr", async () => {
    const local = await temp.make();
    const sandbox = await temp.make();
    await writeTree(local, SAMPLE_TREE);
    const runRemote = await failingTarRunner(await temp.make());

    const upload = uploadToSandbox({ localPath: local, dest: sandbox, gitIgnore: true, runRemote });

    await expect(upload).rejects.toThrow(
      "upload failed: remote command ended with exit code 2:\ntar: simulated: No space left on device",
    );
  });
});

describe("downloadFromSandbox", () => {
  const temp = tempDirs();
  afterEach(() => temp.cleanup());

  it("downloads a directory's contents into dest", async () => {
    const sandbox = await temp.make();
    const local = await temp.make();
    await writeTree(sandbox, SAMPLE_TREE);
    await symlink("README.md", path.join(sandbox, "link"));

    const summary = await downloadFromSandbox({
      sandboxPath: sandbox,
      dest: local,
      runRemote: localShellRunner,
    });

    expect(await hashTree(local)).toEqual(await hashTree(sandbox));
    expect(summary.bytes).toBeGreaterThan(70_000);
  });

  it("downloads a single file into a dest it creates", async () => {
    const sandbox = await temp.make();
    const local = await temp.make();
    await writeTree(sandbox, { "dir/-odd name.txt": "payload", "dir/other.txt": "" });
    const dest = path.join(local, "out/nested");

    await downloadFromSandbox({
      sandboxPath: path.join(sandbox, "dir/-odd name.txt"),
      dest,
      runRemote: localShellRunner,
    });

    expect(Object.keys(await hashTree(local))).toEqual(["out/nested/-odd name.txt"]);
    expect(await readFile(path.join(dest, "-odd name.txt"), "utf8")).toBe("payload");
  });

  it("fails with not_found when the sandbox path does not exist", async () => {
    const sandbox = await temp.make();
    const local = await temp.make();
    const missing = path.join(sandbox, "no such's file");

    await expect(
      downloadFromSandbox({ sandboxPath: missing, dest: local, runRemote: localShellRunner }),
    ).rejects.toMatchObject({
      name: "OpenShellError",
      code: "not_found",
      message: `'${missing}' does not exist in sandbox`,
    });
    expect(await hashTree(local)).toEqual({});
  });

  it("surfaces a failing remote tar's stderr and exit code", async () => {
    const sandbox = await temp.make();
    await writeTree(sandbox, { "a.txt": "a" });
    const runRemote = await failingTarRunner(await temp.make());

    const download = downloadFromSandbox({ sandboxPath: sandbox, dest: await temp.make(), runRemote });

    await expect(download).rejects.toMatchObject({ name: "OpenShellError", code: "internal" });
    await expect(download).rejects.toThrow(
      "download failed: remote command ended with exit code 2:\ntar: simulated: No space left on device",
    );
  });

  it("rejects a local dest that is a file", async () => {
    const sandbox = await temp.make();
    const local = await temp.make();
    await writeTree(sandbox, { "a.txt": "a" });
    await writeTree(local, { file: "" });

    await expect(
      downloadFromSandbox({
        sandboxPath: sandbox,
        dest: path.join(local, "file"),
        runRemote: localShellRunner,
      }),
    ).rejects.toMatchObject({ code: "failed_precondition" });
  });

  it("extracts a hostile archive with the safe extractor, names each refused entry and fails at the end", async () => {
    const parent = await temp.make();
    const local = path.join(parent, "dest");
    await mkdir(local);
    const archiveFile = path.join(await temp.make(), "hostile.tar");
    await writeFile(
      archiveFile,
      Buffer.concat([
        tarEntry({ name: "./", type: "5", mode: 0o777 }),
        tarEntry({ name: "./setuid", type: "0", mode: 0o4777, data: "payload" }),
        tarEntry({ name: "./null", type: "3", mode: 0o666, devmajor: 1, devminor: 3 }),
        tarEntry({ name: "../escape", type: "0", data: "escaped" }),
        tarEntry({ name: "./after", type: "0", data: "still written" }),
        endOfArchive(),
      ]),
    );
    await chmod(local, 0o750);
    const refused: string[] = [];
    const previousUmask = process.umask(0o022);

    try {
      const download = downloadFromSandbox({
        sandboxPath: "/anything",
        dest: local,
        runRemote: () => spawn("cat", [archiveFile], { stdio: "pipe" }),
        onRefused: (entry) => refused.push(`${entry.path}: ${entry.reason}`),
      });
      await expect(download).rejects.toMatchObject({
        code: "permission_denied",
        message: `download incomplete: 2 entries from the sandbox were refused and skipped (listed above); everything else is in '${local}'`,
      });
    } finally {
      process.umask(previousUmask);
    }

    expect(refused).toEqual([
      "./null: device nodes are not extracted",
      "../escape: paths with '..' are not extracted",
    ]);
    expect((await stat(local)).mode & 0o7777).toBe(0o750);
    expect((await stat(path.join(local, "setuid"))).mode & 0o7777).toBe(0o755);
    expect(await hashTree(local)).toEqual({ setuid: expect.any(String), after: expect.any(String) });
    expect(Object.keys(await hashTree(parent)).sort()).toEqual(["dest/after", "dest/setuid"]);
  });

  it("builds a remote command that quotes the path", () => {
    expect(remoteDownloadCommand("/sandbox/it's")).toContain("'/sandbox/it'\\''s'");
    expect(remoteDownloadCommand("/sandbox/dir/file")).toContain("-C '/sandbox/dir' './file'");
  });
});
