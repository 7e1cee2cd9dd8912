#!/usr/bin/env node
// set-version.mjs: the one place versions move. Sets <version> in the root package.json (which the
// bundles read at build time: `--version`, Health, the supervisor's hello) and in every workspace
// package's package.json, so the published packages and their dependencies on each other move
// together (pnpm pack turns `workspace:*` into this version).
//
//   node scripts/set-version.mjs 0.2.0      set it
//   node scripts/set-version.mjs --check    fail when a package's version differs from the root's
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const manifests = ["package.json"];
for (const group of ["apps", "packages"]) {
  for (const name of fs.readdirSync(path.join(root, group)).sort()) {
    const file = path.join(group, name, "package.json");
    if (fs.existsSync(path.join(root, file))) manifests.push(file);
  }
}
const read = (file) => JSON.parse(fs.readFileSync(path.join(root, file), "utf8"));
const arg = process.argv[2];
if (!arg) {
  process.stderr.write("usage: set-version.mjs <version> | --check\n");
  process.exit(2);
}
if (arg === "--check") {
  const want = read("package.json").version;
  const off = manifests.filter((file) => read(file).version !== want);
  if (off.length > 0) {
    process.stderr.write(
      `version ${want} (package.json) differs in: ${off.join(", ")}; run node scripts/set-version.mjs ${want}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`${want}\n`);
  process.exit(0);
}
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(arg)) {
  process.stderr.write(`'${arg}' is not a semantic version (e.g. 0.2.0)\n`);
  process.exit(2);
}
for (const file of manifests) {
  const manifest = read(file);
  manifest.version = arg;
  fs.writeFileSync(path.join(root, file), `${JSON.stringify(manifest, null, 2)}\n`);
}
process.stdout.write(`${arg}: ${manifests.length} package.json files\n`);
