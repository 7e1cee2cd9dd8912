#!/usr/bin/env node
// native-closure.mjs: the runtime closure of a package's native (external) dependencies.
//
//   node packages/sandbox-supervisor/staging/native-closure.mjs <package-dir> <dep>...
//
// Resolves every <dep> from <package-dir> the way Node does (walking up node_modules dirs from the
// package's real path, so pnpm's symlinked layout works), then, recursively, each resolved
// package's dependencies and optionalDependencies (a missing optional one is skipped). Prints one
// line per package: "<name>\t<real dir>", in discovery order. Copying those dirs flat into one
// node_modules (cp -rL <real dir> node_modules/<name>) gives a tree Node resolves at run time.
// Fails when a name resolves to two different copies (a flat tree cannot hold both).
// Shipped in the @openshell/sandbox-supervisor package; used by stage-supervisor-bin.sh beside it,
// by @openshell/driver-vm's stage-vm-runtime.sh (which resolves this package) and by
// scripts/build-gateway-image.sh.
import fs from "node:fs";
import path from "node:path";

const [from, ...roots] = process.argv.slice(2);
if (!from || roots.length === 0) {
  process.stderr.write("usage: native-closure.mjs <package-dir> <dep>...\n");
  process.exit(2);
}

/** @type {Map<string, string>} name -> real dir */
const found = new Map();

/** @param {string} name @param {string} dir */
function lookup(name, dir) {
  for (let d = dir; ; d = path.dirname(d)) {
    if (path.basename(d) !== "node_modules") {
      const candidate = path.join(d, "node_modules", name);
      if (fs.existsSync(path.join(candidate, "package.json"))) return fs.realpathSync(candidate);
    }
    if (path.dirname(d) === d) return undefined;
  }
}

/** @param {string} name @param {string} dir @param {boolean} optional */
function visit(name, dir, optional) {
  const real = lookup(name, dir);
  if (!real) {
    if (optional) return;
    throw new Error(`cannot resolve ${name} from ${dir}`);
  }
  const seen = found.get(name);
  if (seen !== undefined) {
    if (seen !== real) throw new Error(`${name} resolves to two copies: ${seen} and ${real}`);
    return;
  }
  found.set(name, real);
  const pkg = JSON.parse(fs.readFileSync(path.join(real, "package.json"), "utf8"));
  for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, real, false);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, real, true);
}

try {
  for (const root of roots) visit(root, fs.realpathSync(from), false);
} catch (error) {
  process.stderr.write(`native-closure: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
for (const [name, real] of found) process.stdout.write(`${name}\t${real}\n`);
