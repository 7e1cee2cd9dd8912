import { mkdir, symlink } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { scopeGitignoreLine, walkFiles } from "./gitignore-walk.js";
import { tempDirs, writeTree } from "./test-fixtures.js";

describe("scopeGitignoreLine", () => {
  it("keeps root rules as they are and drops blanks and comments", () => {
    expect(scopeGitignoreLine("*.log", "")).toBe("*.log");
    expect(scopeGitignoreLine("", "sub")).toBeUndefined();
    expect(scopeGitignoreLine("   ", "sub")).toBeUndefined();
    expect(scopeGitignoreLine("# comment", "sub")).toBeUndefined();
  });

  it("lets a slash-free pattern match at any depth below its directory", () => {
    expect(scopeGitignoreLine("*.log", "sub")).toBe("sub/**/*.log");
    expect(scopeGitignoreLine("out/", "a/b")).toBe("a/b/**/out/");
    expect(scopeGitignoreLine("!keep.log", "sub")).toBe("!sub/**/keep.log");
    expect(scopeGitignoreLine("tmp\r", "sub")).toBe("sub/**/tmp");
  });

  it("anchors a pattern with a leading or inner slash to its directory", () => {
    expect(scopeGitignoreLine("/build", "sub")).toBe("sub/build");
    expect(scopeGitignoreLine("a/b", "sub")).toBe("sub/a/b");
    expect(scopeGitignoreLine("!/dist/", "sub")).toBe("!sub/dist/");
  });
});

describe("walkFiles", () => {
  const temp = tempDirs();
  afterEach(() => temp.cleanup());

  it("applies nested .gitignore files to their own subtree, deeper rules winning", async () => {
    const root = await temp.make();
    await writeTree(root, {
      ".gitignore": "*.log\n/top-only.txt\n",
      "a.log": "",
      "top-only.txt": "",
      "keep.txt": "",
      "sub/.gitignore": "!important.log\ncache/\n",
      "sub/important.log": "",
      "sub/other.log": "",
      "sub/top-only.txt": "",
      "sub/cache/x": "",
      "sub/deeper/cache/y": "",
      "other/cache/z": "",
      ".git/HEAD": "",
      "sub/.git": "gitdir: elsewhere",
    });
    expect(await walkFiles(root, { gitIgnore: true })).toEqual([
      ".gitignore",
      "keep.txt",
      "other/cache/z",
      "sub/.gitignore",
      "sub/important.log",
      "sub/top-only.txt",
    ]);
  });

  it("lists everything but .git without gitIgnore (symlinks as entries, empty dirs left out)", async () => {
    const root = await temp.make();
    await writeTree(root, { ".gitignore": "*\n", "a.txt": "", "d/b.txt": "", ".git/config": "" });
    await symlink("a.txt", path.join(root, "link"));
    await mkdir(path.join(root, "empty"));
    expect(await walkFiles(root, { gitIgnore: false })).toEqual([".gitignore", "a.txt", "d/b.txt", "link"]);
  });
});
