// Fails when a file imports another workspace package by relative path (`../../packages/x/src/y.js`)
// instead of through that package's name and exports: packages meet only at their public surface.
// Shared build files at the repository root (tsup.binary.ts) belong to no package and are fine.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const root = resolve(import.meta.dirname, "..");
const workspaceRoots = ["packages", "apps"].flatMap((group) =>
  readdirSync(join(root, group))
    .map((name) => join(root, group, name))
    .filter((path) => statSync(path).isDirectory()),
);
workspaceRoots.push(join(root, "e2e"), join(root, "bench"));

const SKIP = new Set(["node_modules", "dist", "gen", ".build"]);
const IMPORT = /(?:from\s+|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']+)["']/g;

function* sourceFiles(dir) {
  for (const entry of readdirSync(dir)) {
    if (SKIP.has(entry) || entry.startsWith(".")) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mts|mjs|js)$/.test(entry)) yield path;
  }
}

const inside = (dir, path) => path === dir || path.startsWith(dir + sep);
const problems = [];
for (const packageDir of workspaceRoots) {
  for (const file of sourceFiles(packageDir)) {
    for (const match of readFileSync(file, "utf8").matchAll(IMPORT)) {
      const target = resolve(dirname(file), match[1]);
      const owner = workspaceRoots.find((dir) => inside(dir, target));
      if (owner && owner !== packageDir)
        problems.push(`${relative(root, file)}: imports ${match[1]} from ${relative(root, owner)} by path`);
    }
  }
}
if (problems.length > 0) {
  console.error(`${problems.join("\n")}\nimport other packages by name (add a subpath export if needed)`);
  process.exit(1);
}
