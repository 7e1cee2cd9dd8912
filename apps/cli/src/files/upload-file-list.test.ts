import { rm } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { git, hasGit, tempDirs, writeTree } from "./test-fixtures.js";
import { listUploadFiles } from "./upload-file-list.js";

describe("listUploadFiles", () => {
  const temp = tempDirs();
  afterEach(() => temp.cleanup());

  it("fails with not_found for a missing local path", async () => {
    const root = await temp.make();
    const missing = path.join(root, "nope");
    await expect(listUploadFiles(missing, { gitIgnore: true })).rejects.toMatchObject({
      code: "not_found",
      message: `local path '${missing}' does not exist`,
    });
  });

  it("lists a single file on its own, relative to its directory", async () => {
    const root = await temp.make();
    await writeTree(root, { "dir/a file.txt": "x", "dir/other": "y" });
    expect(await listUploadFiles(path.join(root, "dir/a file.txt"), { gitIgnore: true })).toEqual({
      baseDir: path.join(root, "dir"),
      files: ["a file.txt"],
    });
  });

  describe.skipIf(!hasGit())("in a git work tree", () => {
    it("uses git: tracked and untracked-but-not-ignored files, minus deleted ones", async () => {
      const repo = await temp.make();
      git(repo, "init", "-q");
      await writeTree(repo, {
        ".gitignore": "*.log\nbuild/\n",
        "tracked.txt": "t",
        "gone.txt": "g",
        "untracked.txt": "u",
        "debug.log": "l",
        "build/out.js": "o",
        // Only git knows this exclude file: proves the listing came from git, not the walker.
        ".git/info/exclude": "local-only.txt\n",
        "local-only.txt": "x",
      });
      git(repo, "add", "tracked.txt", "gone.txt", ".gitignore");
      git(repo, "commit", "-q", "-m", "init");
      await rm(path.join(repo, "gone.txt"));
      const { baseDir, files } = await listUploadFiles(repo, { gitIgnore: true });
      expect(baseDir).toBe(repo);
      expect(files).toEqual([".gitignore", "tracked.txt", "untracked.txt"]);
    });

    it("honours the repository's .gitignore when uploading a subdirectory of it", async () => {
      const repo = await temp.make();
      git(repo, "init", "-q");
      await writeTree(repo, { ".gitignore": "*.tmp\n", "pkg/a.ts": "", "pkg/b.tmp": "", "top.txt": "" });
      expect((await listUploadFiles(path.join(repo, "pkg"), { gitIgnore: true })).files).toEqual(["a.ts"]);
    });

    it("expands a nested repository git lists as one entry, without its .git", async () => {
      const repo = await temp.make();
      git(repo, "init", "-q");
      await writeTree(repo, { "main.txt": "", "vendor/lib/x.c": "", "vendor/lib/.gitignore": "*.o\n" });
      await writeTree(repo, { "vendor/lib/x.o": "" });
      git(path.join(repo, "vendor/lib"), "init", "-q");
      expect((await listUploadFiles(repo, { gitIgnore: true })).files).toEqual([
        "main.txt",
        "vendor/lib/.gitignore",
        "vendor/lib/x.c",
      ]);
    });
  });
});
